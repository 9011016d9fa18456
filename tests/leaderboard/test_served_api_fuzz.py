"""schemathesis against the served app (`spared-bench serve` over real HTTP, as deployed):
generated requests for every operation of its OpenAPI document, no answer a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.leaderboard.conftest import LeaderboardEnv, make_env
from tests.leaderboard.test_serve import served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LeaderboardEnv]]:
    from evaluator.store import dispose_engines

    env = make_env(tmp_path_factory.mktemp("served-fuzz"))
    with served(env, "--workers", "2", "--threads", "4", SPARED_LEADERBOARD_READ_RATE="0",
                SPARED_LEADERBOARD_WRITE_RATE="0") as url:
        yield url, env
    dispose_engines()


@pytest.fixture(scope="module")
def served_schema(served_app: tuple[str, LeaderboardEnv]) -> Any:
    url, _env = served_app
    return schemathesis.openapi.from_url(f"{url}/api/openapi.json")


schema = schemathesis.pytest.from_fixture("served_schema")


@schemathesis.serializer("application/x-tar")
def _tar_body(_ctx: Any, value: Any) -> bytes:
    """Generated upload bodies as bytes (never a valid archive: intake must refuse them)."""
    return value if isinstance(value, bytes) else str(value).encode()


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_served_api_answers_no_5xx(case: Any, served_app: tuple[str, LeaderboardEnv]) -> None:
    url, env = served_app
    headers = env.token("team-a") if case.path.startswith("/api/submissions") else None
    case.call_and_validate(base_url=url, headers=headers, checks=[not_a_server_error],
                           timeout=60)


@schema.parametrize()
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_served_admin_api_answers_no_5xx(case: Any,
                                         served_app: tuple[str, LeaderboardEnv]) -> None:
    if "/hide" in case.path:  # would change what the other examples see
        return
    url, env = served_app
    case.call_and_validate(base_url=url, headers=env.token("baselines"),
                           checks=[not_a_server_error], timeout=60)
