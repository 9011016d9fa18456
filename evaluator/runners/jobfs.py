"""Host-side handling of a job's folders and logs, shared by the runners.

Output is untrusted: it is measured without following symlinks, and anything that is not a
plain file or folder (a symlink could point the evaluator at host files) makes it invalid.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evaluator.core.errors import BenchError
from evaluator.runners.errors import JobFolderError
from evaluator.runners.limits import RunLimits
from evaluator.runners.result import PREDICTIONS_FILE, RunStatus

OutputValidator = Callable[[Path], None]
"""Extra output check: raise a ``BenchError`` to mark the output invalid (its message is kept)."""

CONTAINER_UID = 10001
CONTAINER_GID = 10001
MAX_OUTPUT_ENTRIES = 10_000


def check_input_dir(input_dir: Path) -> Path:
    """Return ``input_dir`` resolved; raise ``JobFolderError`` unless it is an existing folder."""
    path = Path(input_dir).resolve()
    if not path.is_dir():
        found = "a file" if path.exists() else "nothing"
        raise JobFolderError(path, "an existing input folder", found)
    return path


def prepare_output_dir(output_dir: Path, *, owner: tuple[int, int] | None) -> Path:
    """Create (or accept an empty) output folder and hand it to the container user.

    ``owner`` (uid, gid) is applied with chown when given; where that is not permitted (the
    evaluator is not root) the folder is made world-writable instead, so the container user can
    still write. Raises ``JobFolderError`` when the folder exists and is not empty: every job
    gets a fresh /output, so no output of another job can be mistaken for this one's.
    """
    path = Path(output_dir).resolve()
    if path.exists() and not path.is_dir():
        raise JobFolderError(path, "an empty output folder", "a file")
    path.mkdir(parents=True, exist_ok=True)
    leftovers = sorted(p.name for p in path.iterdir())
    if leftovers:
        raise JobFolderError(path, "an empty output folder", f"{len(leftovers)} entries "
                             f"({', '.join(leftovers[:5])})")
    if owner is None:
        return path
    try:
        os.chown(path, *owner)
        path.chmod(0o700)
    except PermissionError:
        path.chmod(0o777)
    return path


@dataclass(frozen=True)
class OutputSize:
    """What is under an output folder: apparent bytes, entries, and the first unsafe entry."""

    total_bytes: int
    entries: int
    unsafe: str | None = None


def measure_output(output_dir: Path, *, stop_after_bytes: int | None = None) -> OutputSize:
    """Sum the sizes under ``output_dir`` without following links; flag non-plain entries.

    A file counts by the larger of its length and its allocated blocks, so a sparse file is
    judged by what loading it would read. Stops early past ``stop_after_bytes`` or past
    ``MAX_OUTPUT_ENTRIES`` entries.
    """
    total = 0
    entries = 0
    root = Path(output_dir)
    stack = [root]

    def shown(path: str | Path) -> str:
        # the author's view: /output/..., never the host folder
        relative = Path(path).relative_to(root).as_posix()
        return "/output" if relative == "." else f"/output/{relative}"

    while stack:
        folder = stack.pop()
        try:
            children = list(os.scandir(folder))
        except OSError as error:
            return OutputSize(total, entries, f"{shown(folder)}: unreadable ({error.strerror})")
        for entry in children:
            entries += 1
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as error:
                return OutputSize(total, entries,
                                  f"{shown(entry.path)}: unreadable ({error.strerror})")
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                total += max(info.st_size, info.st_blocks * 512)
            else:
                kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "a special file"
                return OutputSize(total, entries, f"{shown(entry.path)} is {kind}")
            if entries > MAX_OUTPUT_ENTRIES:
                return OutputSize(
                    total, entries, f"more than {MAX_OUTPUT_ENTRIES} files and folders"
                )
            if stop_after_bytes is not None and total > stop_after_bytes:
                return OutputSize(total, entries)
    return OutputSize(total, entries)


def output_too_big_message(limits: RunLimits, found_bytes: int, *, killed: bool) -> str:
    """The message for an output over ``limits.output_max_mb``."""
    when = "the job was killed when it went past" if killed else "found"
    return (f"expected at most {limits.output_max_mb:g} MB under /output, {when} "
            f"{found_bytes / 2**20:.1f} MB")


def check_output(
    output_dir: Path, limits: RunLimits, validate_output: OutputValidator | None
) -> tuple[RunStatus, str, int]:
    """Check a finished job's output: safe entries, size limit, predictions present, hook.

    Returns (status, message, output bytes); status is ``succeeded``, ``output_missing`` or
    ``output_invalid``.
    """
    size = measure_output(output_dir)
    if size.unsafe is not None:
        return "output_invalid", f"expected only plain files under /output, found {size.unsafe}", \
            size.total_bytes
    if size.total_bytes > limits.output_max_bytes:
        return "output_invalid", output_too_big_message(limits, size.total_bytes, killed=False), \
            size.total_bytes
    predictions = Path(output_dir) / PREDICTIONS_FILE
    if not predictions.exists():
        present = sorted(p.name for p in Path(output_dir).iterdir())
        listing = ", ".join(present[:10]) if present else "an empty folder"
        return "output_missing", (f"expected /output/{PREDICTIONS_FILE}, found no such file "
                                  f"(/output holds {listing})"), size.total_bytes
    if not predictions.is_file():
        return "output_invalid", f"expected /output/{PREDICTIONS_FILE} to be a file, found a " \
            "folder", size.total_bytes
    if validate_output is not None:
        try:
            validate_output(Path(output_dir))
        except BenchError as error:
            return "output_invalid", str(error), size.total_bytes
    return "succeeded", f"wrote /output/{PREDICTIONS_FILE} ({size.total_bytes} bytes in /output)", \
        size.total_bytes


def cap_log(data: bytes, max_bytes: int) -> tuple[str, bool]:
    """Keep the last ``max_bytes`` of a log; return (text, truncated)."""
    truncated = len(data) > max_bytes
    if truncated:
        data = data[-max_bytes:]
    return data.decode("utf-8", errors="replace"), truncated


_OPEN_DEPTH = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: Path) -> None:
    """Remove a folder and everything under it, however deep; no recursion, no long paths.

    Works through folder descriptors (``*at`` calls), so no path grows past PATH_MAX, and holds
    at most ``_OPEN_DEPTH`` of them: a folder deeper than that is first moved up to the top
    folder. Folders are made writable (``chmod 0700``) before they are entered, so a tree the
    evaluator's own user wrote read-only goes too. A missing ``path`` is fine; a symlink is
    removed, never followed. Raises ``OSError`` for what cannot be removed.
    """
    path = Path(path)
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o700)
    try:
        top = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except (NotADirectoryError, OSError) as error:
        if isinstance(error, NotADirectoryError) or error.errno == 40:  # ELOOP: a symlink
            path.unlink(missing_ok=True)
            return
        raise
    stack = [top]
    names: list[str] = [""]
    moved = 0
    try:
        while stack:
            fd = stack[-1]
            descended = False
            with os.scandir(fd) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False):
                        os.unlink(entry.name, dir_fd=fd)
                        continue
                    if len(stack) >= _OPEN_DEPTH:
                        moved += 1
                        os.rename(entry.name, f".removing-{os.getpid()}-{moved}", src_dir_fd=fd,
                                  dst_dir_fd=top)
                        continue
                    with contextlib.suppress(OSError):
                        os.chmod(entry.name, 0o700, dir_fd=fd)
                    stack.append(os.open(entry.name, _DIR_FLAGS, dir_fd=fd))
                    names.append(entry.name)
                    descended = True
                    break
            if descended:
                continue
            stack.pop()
            name = names.pop()
            os.close(fd)
            if stack:
                os.rmdir(name, dir_fd=stack[-1])
    finally:
        for fd in stack:
            os.close(fd)
    os.rmdir(path)
