"""A job's /output: a size-limited tmpfs the engine mounts, copied out safely after the run.

The kernel enforces the limit, not polling: /output is a volume of the engine's ``local``
driver of type tmpfs with ``size=output_max_mb`` and ``nr_inodes`` bounded, so a write, a
``fallocate`` or a file deleted while still open all stop at the limit (ENOSPC), however fast.
Its pages are memory charged to the job's memory cgroup (like /tmp): nothing of it is on the
host's disk while the job runs.

A tmpfs volume is unmounted, and its content lost, when the last running container using it
stops. A *holder* container keeps it mounted past the job's exit: it is created from the
submission's own image (nothing else is known to be on the engine) but runs only
``HOLDER_PROGRAM``, 129 bytes of x86-64 machine code that wait for a signal (``pause`` in a
loop), copied into it before it starts. It runs as 10001 with no capabilities, no network and
16 MB of memory. After the job, ``/output`` is read from the holder as a tar stream
(``get_archive``) and ``collect_output`` writes its plain files and folders under the host's
output folder, owned by the evaluator: entries that are not plain (links, devices, fifos),
folders nested deeper than ``MAX_OUTPUT_DEPTH`` and anything past the size or entry limits are
not written, they make the output invalid.
"""

from __future__ import annotations

import io
import os
import struct
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from evaluator.core.tarstream import TarStream
from evaluator.runners.jobfs import CONTAINER_GID, CONTAINER_UID, MAX_OUTPUT_ENTRIES
from evaluator.runners.limits import RunLimits

HOLDER_PREFIX = "/.spared-hold-"
"""The holder program is copied to ``HOLDER_PREFIX<random>``: no file of the image is in its way."""
MAX_OUTPUT_DEPTH = 32
"""Folders under /output may nest this deep; a deeper tree makes the output invalid."""
PAGE_BYTES = 4096


def _holder_program() -> bytes:
    """A static x86-64 Linux ELF executable: ``for (;;) pause();`` (it ends by SIGKILL)."""
    code = bytes([0xB8, 0x22, 0, 0, 0,  # mov eax, 34 (SYS_pause)
                  0x0F, 0x05,  # syscall
                  0xEB, 0xF7])  # jmp back to the mov
    base, ehsize, phsize = 0x400000, 64, 56
    total = ehsize + phsize + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, SysV
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + ehsize + phsize, ehsize,
                                 0, 0, ehsize, phsize, 1, 0, 0, 0)  # ET_EXEC, x86-64, 1 phdr
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)  # PT_LOAD r-x
    return header + segment + code


HOLDER_PROGRAM = _holder_program()


def holder_archive(path: str) -> bytes:
    """A tar holding ``HOLDER_PROGRAM`` at ``path`` (absolute, mode 0755), for ``put_archive``
    at ``/``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size = len(HOLDER_PROGRAM)
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(HOLDER_PROGRAM))
    return buffer.getvalue()


def output_volume_options(limits: RunLimits) -> dict[str, str]:
    """``driver_opts`` of the ``local`` driver for a job's /output: a bounded tmpfs."""
    options = (f"size={limits.output_max_bytes},nr_inodes={MAX_OUTPUT_ENTRIES + 1},"
               f"uid={CONTAINER_UID},gid={CONTAINER_GID},mode=0700,nosuid,nodev")
    return {"type": "tmpfs", "device": "tmpfs", "o": options}


@dataclass(frozen=True)
class Collected:
    """What ``collect_output`` found: bytes and entries written, and why it stopped, if it did.

    ``allocated_bytes`` counts whole pages, as the tmpfs does (to tell a full /output).
    """

    total_bytes: int
    allocated_bytes: int
    entries: int
    unsafe: str | None = None
    too_big: bool = False


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterable of byte chunks (the engine's archive response)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def collect_output(chunks: Iterable[bytes], output_dir: Path, limits: RunLimits) -> Collected:
    """Write the plain files and folders of an /output tar stream under ``output_dir``.

    The stream is the engine's ``get_archive`` of ``/output`` (members named ``output/...``).
    Files are written 0644 and folders 0755, owned by the evaluator; links, devices and fifos
    are not written. Stops at the first entry that is not plain, deeper than
    ``MAX_OUTPUT_DEPTH``, past ``MAX_OUTPUT_ENTRIES`` or past ``limits.output_max_bytes``
    (a sparse file counts by its length), and says so in the result. Raises
    ``TarStreamError`` for a stream that is not a tar.
    """
    root = Path(output_dir)
    reader = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20)
    stream = TarStream(reader, what="/output", max_header_bytes=1 << 20,
                       max_members=MAX_OUTPUT_ENTRIES + 2)
    total = allocated = entries = 0

    def result(unsafe: str | None = None, too_big: bool = False) -> Collected:
        return Collected(total, allocated, entries, unsafe, too_big)

    for entry in stream:
        parts = [p for p in entry.name.split("/") if p not in ("", ".")]
        if parts and parts[0] == "output":
            parts = parts[1:]
        if not parts:
            continue  # /output itself
        shown = "/output/" + "/".join(parts)
        if ".." in parts:
            return result(f"{shown} is a path out of /output")
        entries += 1
        if entries > MAX_OUTPUT_ENTRIES:
            return result(f"more than {MAX_OUTPUT_ENTRIES} files and folders")
        depth = len(parts) if entry.is_dir else len(parts) - 1
        if depth > MAX_OUTPUT_DEPTH:
            return result(f"folders nested more than {MAX_OUTPUT_DEPTH} deep "
                          f"({shown[:120]}...)")
        target = root.joinpath(*parts)
        if entry.is_dir:
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            allocated += PAGE_BYTES
            continue
        if not entry.is_file:
            return result(f"{shown} is {entry.kind}")
        if total + entry.size > limits.output_max_bytes:
            total += entry.size
            return result(too_big=True)
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            for chunk in stream.read_chunks():
                out.write(chunk)
        total += entry.size
        allocated += -(-entry.size // PAGE_BYTES) * PAGE_BYTES
    return result()
