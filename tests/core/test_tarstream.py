"""The bounded tar reader: headers are refused before they are read, members are counted."""

from __future__ import annotations

import io
import tarfile

import pytest

from evaluator.core.tarstream import TarStream, TarStreamError


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


class CountingReader(io.RawIOBase):
    """A non-seekable stream that records how many bytes were read from it."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[no-untyped-def]
        data = self.inner.read(len(target))
        target[:len(data)] = data
        self.read_bytes += len(data)
        return len(data)


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_members_names_links_and_data(fmt):
    long_name = "d/" + "n" * 300
    data = tar_bytes([(entry("a.txt"), b"hello"), (entry(long_name), b"x" * 700),
                      (entry("l", tarfile.SYMTYPE, "../" + "t" * 200), b""),
                      (entry("sub", tarfile.DIRTYPE), b"")], fmt)
    stream = TarStream(io.BytesIO(data), what="t", max_header_bytes=4096, max_members=10)
    seen = []
    for member in stream:
        body = b"".join(stream.read_chunks()) if member.name == "a.txt" else None
        seen.append((member.name, member.kind, member.linkname, member.size, body))
    assert seen == [("a.txt", "a regular file", "", 5, b"hello"),
                    (long_name, "a regular file", "", 700, None),
                    ("l", "a symlink", "../" + "t" * 200, 0, None),
                    ("sub", "a folder", "", 0, None)]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_a_huge_extended_header_is_refused_before_it_is_read(fmt):
    data = tar_bytes([(entry("n" * 200_000), b"x")], fmt)
    reader = CountingReader(data)
    stream = TarStream(io.BufferedReader(reader, buffer_size=512), what="upload",
                       max_header_bytes=64 * 1024, max_members=10)
    with pytest.raises(TarStreamError, match="at most 65536 bytes, found one of 2000"):
        list(stream)
    assert reader.read_bytes <= 1024  # the header block, never the 200 KB name


def test_member_count_is_bounded():
    data = tar_bytes([(entry(f"f{i}"), b"") for i in range(20)])
    with pytest.raises(TarStreamError, match="at most 5 members"):
        list(TarStream(io.BytesIO(data), what="t", max_header_bytes=4096, max_members=5))


def test_garbage_and_truncation_are_errors():
    with pytest.raises(TarStreamError, match="expected a tar header"):
        list(TarStream(io.BytesIO(b"x" * 1024), what="t", max_header_bytes=64, max_members=5))
    data = tar_bytes([(entry("a"), b"y" * 5000)])
    stream = TarStream(io.BytesIO(data[:2048]), what="t", max_header_bytes=64, max_members=5)
    with pytest.raises(TarStreamError, match="truncated"):
        for _ in stream:
            b"".join(stream.read_chunks())
