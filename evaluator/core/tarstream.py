"""Read an untrusted tar stream one header at a time, with every header and count bounded.

``tarfile`` reads a GNU long-name or pax header's whole data into memory before it hands out
the member (a 500 MB "name" costs 500 MB), and follows a stream to its end. ``TarStream`` reads
the 512-byte header blocks itself, refuses an extended header larger than
``max_header_bytes`` *before* reading it, and stops past ``max_members``; a member's data is
read only when the caller asks (``read_chunks``), else skipped. Used for uploaded image
archives (and their layers) and for a job's /output copied out of the engine.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from evaluator.core.errors import BenchError

BLOCK = 512
_CHUNK = 1 << 20
_EXTENDED = {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
             tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
_REGULAR = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE}


class TarStreamError(BenchError):
    """The stream is not a tar within the limits; the message says what was found."""


@dataclass(frozen=True)
class TarEntry:
    """One member as its headers describe it (names decoded UTF-8, undecodable bytes escaped).

    ``offset_data`` is where its data starts in the stream; ``sparse`` is set for GNU sparse
    members (whose ``size`` is not what they unpack to).
    """

    name: str
    type: bytes
    size: int
    linkname: str
    mode: int
    offset_data: int
    sparse: bool = False

    @property
    def is_file(self) -> bool:
        """A regular file."""
        return self.type in _REGULAR and not self.sparse

    @property
    def is_dir(self) -> bool:
        """A directory."""
        return self.type == tarfile.DIRTYPE

    @property
    def kind(self) -> str:
        """What it is, in words ("a symlink", "a fifo", ...)."""
        if self.sparse:
            return "a sparse file"
        return {tarfile.SYMTYPE: "a symlink", tarfile.LNKTYPE: "a hard link",
                tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device",
                tarfile.FIFOTYPE: "a fifo", tarfile.DIRTYPE: "a folder"}.get(
                    self.type, "a regular file" if self.type in _REGULAR else
                    f"an entry of type {self.type!r}")


def _decode(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes, what: str) -> dict[str, str]:
    """Parse pax records ``"<len> <key>=<value>\\n"``; raise ``TarStreamError`` when malformed."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos:pos + 1] == b"\0":
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarStreamError(f"{what}: expected pax records, found malformed data") from None
        if space < 0 or length <= 0 or pos + length > len(data):
            raise TarStreamError(f"{what}: expected pax records, found malformed data")
        record = data[space + 1:pos + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8",
                                                                       "surrogateescape")
        pos += length
    return records


class TarStream:
    """Iterate a tar stream's members with bounded headers; read or skip each one's data.

    ``source`` is any binary stream (``read`` only; ``seek`` is used when it is seekable).
    ``what`` names the stream in messages. Iterating yields ``TarEntry``; before the next
    member the unread data of the current one is skipped.
    """

    def __init__(self, source: BinaryIO, *, what: str, max_header_bytes: int,
                 max_members: int) -> None:
        self.source = source
        self.what = what
        self.max_header_bytes = max_header_bytes
        self.max_members = max_members
        self.position = 0
        self.members = 0
        self._left = 0  # data bytes (with padding) of the current member not yet consumed
        self._unread = 0  # data bytes of the current member the caller may still read
        try:
            self._seekable = bool(source.seekable())
        except (AttributeError, OSError):
            self._seekable = False

    def _read_exact(self, n: int) -> bytes:
        parts = []
        while n > 0:
            chunk = self.source.read(min(n, _CHUNK))
            if not chunk:
                raise TarStreamError(f"{self.what}: expected more tar data, found the end "
                                     "(truncated)")
            parts.append(chunk)
            n -= len(chunk)
            self.position += len(chunk)
        return b"".join(parts)

    def _skip(self, n: int) -> None:
        if n <= 0:
            return
        if self._seekable:
            self.source.seek(n, 1)
            self.position += n
            return
        while n > 0:
            chunk = self.source.read(min(n, _CHUNK))
            if not chunk:
                raise TarStreamError(f"{self.what}: expected more tar data, found the end "
                                     "(truncated)")
            n -= len(chunk)
            self.position += len(chunk)

    def read_chunks(self) -> Iterator[bytes]:
        """Yield the current member's data in chunks (once; what is not read is skipped)."""
        while self._unread > 0:
            chunk = self.source.read(min(self._unread, _CHUNK))
            if not chunk:
                raise TarStreamError(f"{self.what}: expected more tar data, found the end "
                                     "(truncated)")
            self._unread -= len(chunk)
            self._left -= len(chunk)
            self.position += len(chunk)
            yield chunk

    def _padded(self, size: int) -> int:
        return -(-size // BLOCK) * BLOCK

    def __iter__(self) -> Iterator[TarEntry]:
        long_name: str | None = None
        long_link: str | None = None
        pax: dict[str, str] = {}
        while True:
            self._skip(self._left)
            self._left = self._unread = 0
            block = self.source.read(BLOCK)
            self.position += len(block)
            if len(block) < BLOCK or block == bytes(BLOCK):
                return  # end of archive (or a stream that just stops at a block boundary)
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError as error:
                raise TarStreamError(f"{self.what}: expected a tar header at byte "
                                     f"{self.position - BLOCK}, found something else "
                                     f"({error})") from None
            size = info.size
            if info.type in _EXTENDED:
                if size > self.max_header_bytes:
                    raise TarStreamError(
                        f"{self.what}: expected extended tar headers (long names, pax) of at "
                        f"most {self.max_header_bytes} bytes, found one of {size} bytes")
                data = self._read_exact(self._padded(size))[:size]
                if info.type == tarfile.GNUTYPE_LONGNAME:
                    long_name = _decode(data)
                elif info.type == tarfile.GNUTYPE_LONGLINK:
                    long_link = _decode(data)
                elif info.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
                    pax.update(_parse_pax(data, self.what))
                continue  # a global header (XGLTYPE) changes nothing this reader looks at
            self.members += 1
            if self.members > self.max_members:
                raise TarStreamError(f"{self.what}: expected at most {self.max_members} "
                                     "members, found more")
            name = pax.get("path", long_name if long_name is not None else info.name)
            link = pax.get("linkpath", long_link if long_link is not None else info.linkname)
            if "size" in pax:
                try:
                    size = int(pax["size"])
                except ValueError:
                    raise TarStreamError(f"{self.what}: {name}: expected a pax size, found "
                                         f"{pax['size'][:40]!r}") from None
            sparse = (info.type == tarfile.GNUTYPE_SPARSE
                      or any(key.startswith("GNU.sparse.") for key in pax))
            # As tarfile reads it: data follows regular files and types it does not know.
            has_data = info.type in _REGULAR or info.type not in tarfile.SUPPORTED_TYPES \
                or info.type == tarfile.GNUTYPE_SPARSE
            data_size = size if has_data else 0
            entry = TarEntry(name=name, type=info.type, size=size, linkname=link,
                             mode=info.mode, offset_data=self.position, sparse=sparse)
            self._unread = data_size
            self._left = self._padded(data_size)
            long_name = long_link = None
            pax = {}
            yield entry
