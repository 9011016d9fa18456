"""The web app never imports docker or torch, even while serving pages and taking uploads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.leaderboard.conftest import LeaderboardEnv

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from evaluator.core.settings import Settings
from leaderboard import LeaderboardConfig, create_app
from tests.orchestrator.archives import make_archive

home, url, token = sys.argv[1], sys.argv[2], sys.argv[3]
app = create_app(Settings(home=home, queue_url=f"sqlite:///{home}/queue.db"), database_url=url,
                 config=LeaderboardConfig(read_rate_per_s=0, write_rate_per_min=0), warm=False)
client = app.test_client()
codes = [client.get(p).status_code for p in ("/", "/significance", "/datasets", "/entries/1",
                                             "/api/leaderboard", "/plots/violin.svg",
                                             "/plots/cd.svg", "/guide", "/api/openapi.json")]
archive, _ = make_archive(nonce="isolation")
codes.append(client.post("/api/submissions?name=iso", data=archive,
                         headers={"Authorization": "Bearer " + token}).status_code)
codes.append(client.get("/api/submissions/1",
                        headers={"Authorization": "Bearer " + token}).status_code)
print(codes)
print(sorted(m for m in ("docker", "torch") if m in sys.modules))
"""


def test_app_imports_neither_docker_nor_torch(env: LeaderboardEnv) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(env.home / "iso"), env.url,
                           env.seeded.tokens["baselines"]],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    codes, modules = done.stdout.strip().splitlines()[-2:]
    assert codes == "[200, 200, 200, 200, 200, 200, 200, 200, 200, 201, 200]"
    assert modules == "[]"
