"""Measure what a stage costs: a command in a memory-capped cgroup, bytes on disk.

The cap is the kernel's (a cgroup's memory limit, swap included): a process that holds more
than the cap in anonymous memory is killed, so a stage that loads every patch at once fails
instead of passing slowly. Page cache counts against the cap too but is reclaimed under it.
cgroup v2 (``memory.max``) and v1 (``memory.limit_in_bytes``) are both supported; with
neither writable, ``run_capped`` raises: a memory test never passes uncapped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CappedRun:
    """What a capped command did: exit code, output, peak RSS, and whether the cap killed it."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int
    oom_killed: bool


class _Cgroup:
    def __init__(self, cap_bytes: int) -> None:
        name = f"spared-bench-test-{uuid.uuid4().hex[:10]}"
        if (CGROUP_ROOT / "cgroup.controllers").is_file():
            self.path = CGROUP_ROOT / name
            self.path.mkdir()
            (self.path / "memory.max").write_text(str(cap_bytes))
            if (self.path / "memory.swap.max").exists():
                (self.path / "memory.swap.max").write_text("0")
            self.version = 2
        elif (CGROUP_ROOT / "memory").is_dir():
            self.path = CGROUP_ROOT / "memory" / name
            self.path.mkdir()
            (self.path / "memory.limit_in_bytes").write_text(str(cap_bytes))
            swap = self.path / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(cap_bytes))
            self.version = 1
        else:
            raise RuntimeError(f"expected a writable memory cgroup under {CGROUP_ROOT}, "
                               "found none: the memory cap cannot be enforced")

    def oom_killed(self) -> bool:
        if self.version == 2:
            events = (self.path / "memory.events").read_text().split()
            return int(dict(zip(events[::2], events[1::2], strict=True)).get("oom_kill", 0)) > 0
        failcnt = self.path / "memory.oom_control"
        text = failcnt.read_text() if failcnt.exists() else ""
        return "oom_kill 1" in text or any(
            line.startswith("oom_kill ") and int(line.split()[1]) > 0
            for line in text.splitlines())

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def run_capped(argv: list[str], cap_bytes: int | None, *, env: dict[str, str] | None = None,
               cwd: Path | str | None = None, timeout_s: float = 900) -> CappedRun:
    """Run ``argv`` inside a new cgroup limited to ``cap_bytes``; wait and measure it.

    ``cap_bytes=None`` runs it uncapped, only measured (benchmarks).
    The peak RSS is the child's own ``ru_maxrss`` (from ``wait4``; the largest of the process
    and the children it waited for). Raises ``RuntimeError`` when no memory cgroup can be
    made; past ``timeout_s`` the command is killed (returncode -9).
    """
    group = _Cgroup(cap_bytes) if cap_bytes is not None else None

    def enter() -> None:
        if group is not None:
            (group.path / "cgroup.procs").write_text(str(os.getpid()))

    out_path = Path(f"/tmp/.capped-{uuid.uuid4().hex}")
    try:
        with open(f"{out_path}.out", "w+") as out, open(f"{out_path}.err", "w+") as err:
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, preexec_fn=enter)
            timer = threading.Timer(timeout_s, proc.kill)
            timer.start()
            try:
                # wait4, not wait(): the rusage of this child alone (its own peak RSS).
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                timer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        return CappedRun(returncode=proc.returncode, stdout=stdout, stderr=stderr,
                         peak_rss_bytes=usage.ru_maxrss * 1024,
                         oom_killed=group is not None and group.oom_killed())
    finally:
        for suffix in (".out", ".err"):
            Path(f"{out_path}{suffix}").unlink(missing_ok=True)
        if group is not None:
            group.remove()


def disk_bytes(root: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes on disk under ``root``, each inode counted once (hard links share blocks).

    ``seen`` carries the inodes counted so far across calls: a second call then counts only
    what is new (e.g. what a second release added).
    """
    seen = set() if seen is None else seen
    total = 0
    for path in root.rglob("*"):
        info = path.lstat()
        if path.is_file() and (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total
