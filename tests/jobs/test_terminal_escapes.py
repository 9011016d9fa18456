"""Terminal control sequences from a submission never reach the terminal raw (issue 17).

The image prints a title escape, a clipboard write, a carriage return that fakes a PASS line
and a C1 control, and names a file under /output with an escape; `check` shows all of it
escaped. (The worker and `status` path: tests/orchestrator/test_worker.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.core.text import escape_controls

pytestmark = pytest.mark.docker

IMAGE_DIR = Path(__file__).parent / "images" / "terminal_escapes"
RAW = ("\x1b", "\x07", "\r", "\x9b")


def assert_no_raw_controls(text: str) -> None:
    found = sorted({repr(c) for c in RAW if c in text})
    assert not found, f"raw control characters reached the terminal: {found}"


@pytest.fixture(scope="module")
def escapes_image(baseline_images: dict[str, str]) -> Iterator[str]:
    import docker

    client = docker.from_env()
    tag = "spared-bench-test/terminal-escapes:1"
    client.images.build(path=str(IMAGE_DIR), tag=tag, network_mode="none", rm=True,
                        forcerm=True, buildargs={"BASE_IMAGE": "spared-bench/base:1"})
    yield tag
    client.images.remove(tag, force=True)
    client.close()


def test_check_shows_controls_escaped(escapes_image: str, bench_home: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(bench_home))
    code = main(["check", escapes_image, "--tracks", "raw", "--datasets",
                 "villacampa_lung_organoid", "--time-limit-s", "30", "--mem-limit-gb", "1"])
    out, err = capsys.readouterr()
    assert code == 1
    assert_no_raw_controls(out + err)
    assert "output_missing" in out
    assert "\\x1b]0;named\\x07.txt" in out  # the file name, visible
    assert "| \\x1b]0;pwned title\\x07\\x1b]52;c;cm0gLXJmIH4K\\x07loading" in out
    assert "| progress\\x0d\\x1b[2KPASS  fake/raw" in out  # no line starts with the fake PASS
    assert not any(line.startswith("PASS") for line in out.splitlines())
    assert "c1 csi \\x9b31m red" in out


def test_escape_controls_keeps_text_and_shows_controls() -> None:
    assert escape_controls("plain text\tand tab, ünïcode") == "plain text\tand tab, ünïcode"
    assert escape_controls("a\nb\r\x1b[2K\x7f\x85\u202egnp.exe") == \
        "a\\x0ab\\x0d\\x1b[2K\\x7f\\x85\\u202egnp.exe"
    assert escape_controls("line1\nline2\r", keep_newlines=True) == "line1\nline2\\x0d"
