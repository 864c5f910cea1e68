"""Read a split ZIP archive (``name.z01``, ``name.z02``, ..., ``name.zip``) in place.

Large datasets (FSD50K) are published as split archives: the bytes of one archive cut into
parts, the central directory in the last part (``.zip``), and every member located by the
part ("disk") its local header starts on and its offset within that part. :mod:`zipfile`
reads single-file archives only. :func:`open_split_zip` presents the parts as one seekable
stream -- their concatenation, followed by a central directory rewritten with offsets into
that concatenation -- so :class:`zipfile.ZipFile` checks CRCs, decompresses and extracts as
usual, without copying the parts into one file first.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["open_split_zip", "split_parts"]

_CENTRAL = b"PK\x01\x02"
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_LOCATOR64 = b"PK\x06\x07"
_ZIP64_EXTRA = 0x0001
_MAX32, _MAX16 = 0xFFFFFFFF, 0xFFFF


def split_parts(archive: str | os.PathLike[str]) -> list[Path]:
    """The parts of the split archive whose last part is ``archive`` (``name.zip``), in order:
    ``name.z01``, ``name.z02``, ... then ``name.zip`` (only ``name.zip`` when not split).

    Raises
    ------
    zipfile.BadZipFile
        When the numbered parts have a gap (``.z01`` and ``.z03`` without ``.z02``).
    """
    archive = Path(archive)
    numbered = sorted(archive.parent.glob(f"{archive.stem}.z[0-9][0-9]*"))
    numbers = [int(path.suffix[2:]) for path in numbered if path.suffix[2:].isdigit()]
    if numbers != list(range(1, len(numbers) + 1)):
        raise zipfile.BadZipFile(f"{archive}: parts {numbers} of the split archive are not "
                                 f"numbered 1..{len(numbers)}")
    return [*sorted(numbered, key=lambda path: int(path.suffix[2:])), archive]


class _Concatenation(io.RawIOBase):
    """Files read as one seekable stream, followed by ``tail`` bytes."""

    def __init__(self, paths: Sequence[Path], tail: bytes = b"") -> None:
        super().__init__()
        self._handles = [open(path, "rb") for path in paths]  # closed by close()
        sizes = [os.fstat(handle.fileno()).st_size for handle in self._handles]
        self.starts = [sum(sizes[:index]) for index in range(len(sizes))]
        self.data_size = sum(sizes)
        self._tail = tail
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position,
                io.SEEK_END: self.data_size + len(self._tail)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            position = self._position
            if position >= self.data_size:
                start = position - self.data_size
                chunk = self._tail[start:start + len(view) - filled]
                if not chunk:
                    break
                view[filled:filled + len(chunk)] = chunk
            else:
                part = max(index for index, begin in enumerate(self.starts)
                           if begin <= position)
                handle = self._handles[part]
                handle.seek(position - self.starts[part])
                chunk = handle.read(len(view) - filled)
                if not chunk:  # the end of a part: go on in the next one
                    self._position = (self.starts[part + 1] if part + 1 < len(self.starts)
                                      else self.data_size)
                    continue
                view[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
            self._position += len(chunk)
        return filled

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


def _zip64_values(extra: bytes, wanted: Sequence[str]) -> dict[str, int]:
    """Values of the ZIP64 extra field for the ``wanted`` fields, in the format's order."""
    sizes = {"file_size": 8, "compress_size": 8, "offset": 8, "disk": 4}
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        if kind == _ZIP64_EXTRA:
            values, cursor = {}, position + 4
            for name in wanted:
                fmt = "<Q" if sizes[name] == 8 else "<I"
                values[name] = struct.unpack_from(fmt, extra, cursor)[0]
                cursor += sizes[name]
            return values
        position += 4 + length
    raise zipfile.BadZipFile("a member needs a ZIP64 extra field it does not have")


def _without_zip64(extra: bytes) -> bytes:
    kept, position = b"", 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        if kind != _ZIP64_EXTRA:
            kept += extra[position:position + 4 + length]
        position += 4 + length
    return kept


def _end_of_archive(last: bytes, parts: Sequence[Path]) -> tuple[int, int, int, int]:
    """(disk of the central directory, its offset there, its size, entries)."""
    found = last.rfind(_END)
    if found < 0:
        raise zipfile.BadZipFile(f"{parts[-1]}: no end of central directory record")
    (_, _, cd_disk, _, entries, cd_size, cd_offset,
     _) = struct.unpack_from("<4s4H2LH", last, found)
    locator = found - 20
    if locator >= 0 and last[locator:locator + 4] == _LOCATOR64:
        _, record_disk, record_offset, _ = struct.unpack_from("<4sLQL", last, locator)
        if record_disk != len(parts) - 1:
            raise zipfile.BadZipFile(f"{parts[-1]}: the ZIP64 end record is not in the last "
                                     "part")
        with open(parts[-1], "rb") as handle:  # the offset is within the last part
            handle.seek(record_offset)
            record = handle.read(56)
        if record[:4] != _END64:
            raise zipfile.BadZipFile(f"{parts[-1]}: bad ZIP64 end of central directory")
        (_, _, _, _, _, cd_disk, _, entries, cd_size,
         cd_offset) = struct.unpack("<4sQ2H2L4Q", record)
    return cd_disk, cd_offset, cd_size, entries


def _rewritten_directory(directory: bytes, entries: int, starts: Sequence[int]) -> bytes:
    """Central directory entries with every member's offset made absolute (always in a
    ZIP64 extra field, since a concatenation of parts may pass 4 GiB)."""
    out, position = [], 0
    for _ in range(entries):
        if directory[position:position + 4] != _CENTRAL:
            raise zipfile.BadZipFile("corrupt central directory of the split archive")
        header = list(struct.unpack_from("<4s6H3L5H2L", directory, position))
        name_length, extra_length, comment_length = header[10], header[11], header[12]
        disk, offset = header[13], header[16]
        body = position + 46
        name = directory[body:body + name_length]
        extra = directory[body + name_length:body + name_length + extra_length]
        comment = directory[body + name_length + extra_length:
                            body + name_length + extra_length + comment_length]
        wanted = [field for field, value in (("file_size", header[9]),
                                             ("compress_size", header[8]),
                                             ("offset", offset), ("disk", disk))
                  if value == (_MAX16 if field == "disk" else _MAX32)]
        values = _zip64_values(extra, wanted) if wanted else {}
        disk, offset = values.get("disk", disk), values.get("offset", offset)
        if disk >= len(starts):
            raise zipfile.BadZipFile(f"member {name!r} starts on part {disk + 1}, but there "
                                     f"are {len(starts)} parts")
        sizes = [values[field] for field in ("file_size", "compress_size") if field in values]
        zip64 = struct.pack(f"<HH{len(sizes) + 1}Q", _ZIP64_EXTRA, 8 * (len(sizes) + 1),
                            *sizes, starts[disk] + offset)
        new_extra = zip64 + _without_zip64(extra)
        header[11], header[13], header[16] = len(new_extra), 0, _MAX32
        out.append(struct.pack("<4s6H3L5H2L", *header) + name + new_extra + comment)
        position = body + name_length + extra_length + comment_length
    return b"".join(out)


def open_split_zip(parts: Sequence[str | os.PathLike[str]]) -> zipfile.ZipFile:
    """A :class:`zipfile.ZipFile` over the parts of a split archive (see the module docstring).

    Parameters
    ----------
    parts : sequence of path-like
        ``name.z01``, ``name.z02``, ..., ``name.zip`` in this order (:func:`split_parts`); a
        single ``name.zip`` works too.

    Raises
    ------
    zipfile.BadZipFile
        When the parts are not one split archive (missing end record, corrupt directory, a
        member on a part that is not there).
    """
    parts = [Path(part) for part in parts]
    with open(parts[-1], "rb") as handle:
        handle.seek(max(0, os.fstat(handle.fileno()).st_size - (1 << 16) - 128))
        last_tail = handle.read()
    cd_disk, cd_offset, cd_size, entries = _end_of_archive(last_tail, parts)
    stream = _Concatenation(parts)
    if cd_disk >= len(parts):
        stream.close()
        raise zipfile.BadZipFile(f"{parts[-1]}: central directory on part {cd_disk + 1} of "
                                 f"{len(parts)}")
    stream.seek(stream.starts[cd_disk] + cd_offset)
    directory = stream.read(cd_size)
    rewritten = _rewritten_directory(directory, entries, stream.starts)
    data_size = stream.data_size
    stream.close()
    end64 = struct.pack("<4sQ2H2L4Q", _END64, 44, 45, 45, 0, 0, entries, entries,
                        len(rewritten), data_size)
    locator = struct.pack("<4sLQL", _LOCATOR64, 0, data_size + len(rewritten), 1)
    end = struct.pack("<4s4H2LH", _END, 0, 0, min(entries, _MAX16), min(entries, _MAX16),
                      _MAX32, _MAX32, 0)
    view = _Concatenation(parts, tail=rewritten + end64 + locator + end)
    return zipfile.ZipFile(io.BufferedReader(view, buffer_size=1 << 20))
