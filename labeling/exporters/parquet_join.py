"""Joining Parquet files (parts of one export, written by separate processes) into one file without decoding
them: the parts' row groups are copied byte for byte and one footer is written that lists them all.

A Parquet file is ``PAR1``, the row groups' column chunks (and any page indexes or bloom filters), the footer
(a ``FileMetaData`` in Thrift's compact protocol), the footer's length and ``PAR1``. Offsets in the footer
are absolute, so a part's copy that lands ``shift`` bytes further on gets every offset moved by ``shift``;
the joined footer is the first part's with the row counts added up and the row groups of all parts in
order. Arrow's Python API has no such join (it would decode and re-encode every page: a quarter of a
two-process Parquet export's time), hence the small Thrift codec here.

``join`` refuses (``JoinRefused``) what it does not know to be safe (an encrypted footer, parts whose
schemas differ, a footer this codec would not write back byte for byte); the caller then joins by
re-encoding."""
from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from .files import append_file

MAGIC = b"PAR1"

# Thrift compact protocol type ids.
TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(1, 13)

# Field ids (parquet.thrift) of the structs joining touches.
FILE_NUM_ROWS, FILE_ROW_GROUPS = 3, 4
GROUP_COLUMNS, GROUP_FILE_OFFSET, GROUP_ORDINAL = 1, 5, 7
CHUNK_FILE_OFFSET, CHUNK_META, CHUNK_OFFSET_INDEX, CHUNK_COLUMN_INDEX = 2, 3, 4, 6
META_DATA_PAGE, META_INDEX_PAGE, META_DICTIONARY_PAGE, META_BLOOM_FILTER = 9, 10, 11, 14
CHUNK_OFFSETS = (CHUNK_FILE_OFFSET, CHUNK_OFFSET_INDEX, CHUNK_COLUMN_INDEX)
META_OFFSETS = (META_DATA_PAGE, META_INDEX_PAGE, META_DICTIONARY_PAGE, META_BLOOM_FILTER)


class JoinRefused(Exception):
    """The parts can't be joined by copying (the reason is the message)."""


# A struct is a list of [field id, type, value]; a list or set is (element type, [values]); a map is
# (key type, value type, [(key, value)]); booleans inside containers keep their byte.


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int):
        if kind in (TRUE, FALSE, BYTE):
            return self.byte()
        if kind in (I16, I32, I64):
            return self.zigzag()
        if kind == DOUBLE:
            self.pos += 8
            return self.data[self.pos - 8 : self.pos]
        if kind == BINARY:
            size = self.varint()
            self.pos += size
            return self.data[self.pos - size : self.pos]
        if kind in (LIST, SET):
            head = self.byte()
            size = head >> 4 if head >> 4 != 15 else self.varint()
            return head & 0x0F, [self.value(head & 0x0F) for _ in range(size)]
        if kind == MAP:
            size = self.varint()
            types = self.byte() if size else 0
            return types >> 4, types & 0x0F, [(self.value(types >> 4), self.value(types & 0x0F)) for _ in range(size)]
        if kind == STRUCT:
            return self.struct()
        raise JoinRefused(f"unknown Thrift type {kind} in a Parquet footer")

    def struct(self) -> list[list]:
        fields, last = [], 0
        while (head := self.byte()) != 0:
            kind, delta = head & 0x0F, head >> 4
            field = last + delta if delta else self.zigzag()
            fields.append([field, kind, kind == TRUE if kind in (TRUE, FALSE) else self.value(kind)])
            last = field
        return fields


def _varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _zigzag(out: bytearray, n: int) -> None:
    _varint(out, (n << 1) ^ (n >> 63))


def _value(out: bytearray, kind: int, value) -> None:
    if kind in (TRUE, FALSE, BYTE):
        out.append(value)
    elif kind in (I16, I32, I64):
        _zigzag(out, value)
    elif kind == DOUBLE:
        out += value
    elif kind == BINARY:
        _varint(out, len(value))
        out += value
    elif kind in (LIST, SET):
        element, values = value
        if len(values) < 15:
            out.append(len(values) << 4 | element)
        else:
            out.append(0xF0 | element)
            _varint(out, len(values))
        for item in values:
            _value(out, element, item)
    elif kind == MAP:
        key, val, pairs = value
        _varint(out, len(pairs))
        if pairs:
            out.append(key << 4 | val)
        for k, v in pairs:
            _value(out, key, k)
            _value(out, val, v)
    else:
        _struct(out, value)


def _struct(out: bytearray, fields: list[list]) -> None:
    last = 0
    for field, kind, value in fields:
        if kind in (TRUE, FALSE):
            kind = TRUE if value else FALSE
        if 0 < field - last <= 15:
            out.append((field - last) << 4 | kind)
        else:
            out.append(kind)
            _zigzag(out, field)
        if kind not in (TRUE, FALSE):
            _value(out, kind, value)
        last = field
    out.append(0)


def decode(footer: bytes) -> list[list]:
    reader = _Reader(footer)
    fields = reader.struct()
    if reader.pos != len(footer):
        raise JoinRefused("trailing bytes after a Parquet footer")
    return fields


def encode(fields: list[list]) -> bytes:
    out = bytearray()
    _struct(out, fields)
    return bytes(out)


def _get(fields: list[list], field: int):
    return next((f for f in fields if f[0] == field), None)


def _shift(fields: list[list], names: Iterable[int], shift: int) -> None:
    for f in fields:
        if f[0] in names and f[2] > 0:  # 0: not set (a deprecated offset some writers leave at 0)
            f[2] += shift


def _footer(fh: IO[bytes], path: Path) -> tuple[list[list], int]:
    """The decoded footer of the Parquet file open in ``fh``, and where the footer starts (the end of the
    part's data)."""
    fh.seek(0, 2)
    size = fh.tell()
    fh.seek(0)
    if size < 12 or fh.read(4) != MAGIC:
        raise JoinRefused(f"{path.name} is not a plain Parquet file")
    fh.seek(size - 8)
    length, magic = struct.unpack("<I4s", fh.read(8))
    if magic != MAGIC:  # "PARE": an encrypted footer
        raise JoinRefused(f"{path.name} has no plain Parquet footer")
    start = size - 8 - length
    fh.seek(start)
    raw = fh.read(length)
    fields = decode(raw)
    if encode(fields) != raw:
        raise JoinRefused(f"{path.name}'s footer would not be written back as it was")
    return fields, start


def join(parts: Iterable[Path], out: IO[bytes]) -> None:
    """Write one Parquet file of ``parts`` (Parquet files of one schema) to ``out``: their row groups in
    order, copied. Raises ``JoinRefused`` before writing anything if a part can't be joined so."""
    footers = []
    for path in parts:
        with open(path, "rb") as fh:
            footers.append((path, *_footer(fh, path)))
    if not footers:
        raise JoinRefused("no parts to join")
    first = footers[0][1]
    if _get(first, FILE_ROW_GROUPS) is None:
        raise JoinRefused("the first part's footer lists no row groups")
    shared = [f for f in first if f[0] not in (FILE_NUM_ROWS, FILE_ROW_GROUPS)]
    for path, fields, _ in footers[1:]:
        if [f for f in fields if f[0] not in (FILE_NUM_ROWS, FILE_ROW_GROUPS)] != shared:
            raise JoinRefused(f"{path.name}'s schema or file metadata differs from the first part's")
    rows, groups, at = 0, [], len(MAGIC)
    out.write(MAGIC)
    for path, fields, end in footers:
        shift = at - len(MAGIC)  # the part's data started right after its own magic
        for group in (_get(fields, FILE_ROW_GROUPS) or [0, LIST, (STRUCT, [])])[2][1]:
            _shift(group, (GROUP_FILE_OFFSET,), shift)
            for chunk in _get(group, GROUP_COLUMNS)[2][1]:
                _shift(chunk, CHUNK_OFFSETS, shift)
                if (meta := _get(chunk, CHUNK_META)) is not None:
                    _shift(meta[2], META_OFFSETS, shift)
            if (ordinal := _get(group, GROUP_ORDINAL)) is not None:
                ordinal[2] = len(groups)
            groups.append(group)
        rows += _get(fields, FILE_NUM_ROWS)[2]
        append_file(out, path, len(MAGIC), end - len(MAGIC))
        at += end - len(MAGIC)
    merged = [[f[0], f[1], f[2]] for f in first]
    _get(merged, FILE_NUM_ROWS)[2] = rows
    _get(merged, FILE_ROW_GROUPS)[2] = (STRUCT, groups)
    footer = encode(merged)
    out.write(footer)
    out.write(struct.pack("<I4s", len(footer), MAGIC))
