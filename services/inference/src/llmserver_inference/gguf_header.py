"""Reads chosen metadata keys of a GGUF file, fast, without the gguf package's full reader.

The catalog asks for a few keys of every unlisted model file, on the request path (the event
loop). gguf's GGUFReader builds an object per element of every array, which for a 262k-token
vocabulary takes seconds and stalls every request meanwhile (/health included). This walks the
key-value section once over a memory map, skipping arrays by arithmetic where the element size
is fixed and with one length read per string otherwise, and stops once it has every wanted key.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from pathlib import Path

_MAGIC = b"GGUF"
# GGUF value types -> struct format of one scalar; 8 is a string, 9 an array.
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
Value = int | float | bool | str | None


class GGUFHeaderError(ValueError):
    """Not a GGUF file, or one cut short (still being written)."""


class _Cursor:
    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.at = 0

    def unpack(self, fmt: str) -> tuple[int | float | bool, ...]:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise GGUFHeaderError("the file ends inside its metadata")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values

    def string(self) -> str:
        (length,) = self.unpack("<Q")
        end = self.at + int(length)
        if end > len(self.data):
            raise GGUFHeaderError("the file ends inside its metadata")
        text = self.data[self.at : end].decode("utf-8", errors="replace")
        self.at = end
        return text

    def skip_strings(self, count: int) -> None:
        data, at, size = self.data, self.at, len(self.data)
        unpack = struct.Struct("<Q").unpack_from
        for _ in range(count):
            if at + 8 > size:
                raise GGUFHeaderError("the file ends inside its metadata")
            at += 8 + unpack(data, at)[0]
        if at > size:
            raise GGUFHeaderError("the file ends inside its metadata")
        self.at = at

    def value(self, kind: int) -> Value:
        """The value of a scalar or string; an array is skipped (None)."""
        if kind == _STRING:
            return self.string()
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])[0]
        if kind != _ARRAY:
            raise GGUFHeaderError(f"unknown GGUF value type {kind}")
        element, count = self.unpack("<IQ")
        if element == _STRING:
            self.skip_strings(int(count))
        elif element in _SCALARS:
            self.at += struct.calcsize(_SCALARS[element]) * int(count)
        else:  # nested arrays: walk them
            for _ in range(int(count)):
                self.value(int(element))
        return None


def iter_metadata(path: Path) -> Iterator[tuple[str, Value]]:
    """Each key of the file's metadata with its value (None for arrays, which are skipped), in
    file order; the caller stops iterating once it has what it needs."""
    with path.open("rb") as file:
        if file.read(4) != _MAGIC:
            raise GGUFHeaderError(f"{path.name} is not a GGUF file")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            cursor = _Cursor(data)
            cursor.at = 4
            (version,) = cursor.unpack("<I")
            if version < 2:
                raise GGUFHeaderError(f"GGUF version {version} is not supported")
            _tensors, kv_count = cursor.unpack("<QQ")
            for _ in range(int(kv_count)):
                key = cursor.string()
                (kind,) = cursor.unpack("<I")
                yield key, cursor.value(int(kind))
