"""Streaming an import file as records with their 1-based line numbers, in bounded memory.

Three containers: JSON lines, one JSON array (pretty-printed or not: LLaMA-Factory ships its data that way),
and CSV with a header row. The file is read in binary so that a bad UTF-8 byte is reported on its own line
(instead of failing the whole read) and so that only ``\\n`` ends a line (``str.splitlines`` would also split
on U+2028 inside a JSON string). A record longer than ``max_record_bytes`` is reported and skipped rather
than buffered. Every byte read is hashed, so a second pass can tell whether the file changed in between."""
from __future__ import annotations

import codecs
import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .base import RecordError

BOM = b"\xef\xbb\xbf"
CHUNK = 1 << 20
PROGRESS_EVERY = 1 << 20


@dataclass
class Record:
    line: int
    value: Any = None
    error: RecordError | None = None


def sniff(path: Path) -> str:
    """"jsonl", "array", "csv" or "empty", from the first byte that is not whitespace (or a BOM)."""
    with path.open("rb") as fh:
        while chunk := fh.read(4096):
            head = chunk.lstrip(BOM).lstrip()
            if head:
                return {ord("{"): "jsonl", ord("["): "array"}.get(head[0], "csv")
    return "empty"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# NaN and Infinity parse by default but cannot be stored in jsonb: refuse them at the door.
_DECODER = json.JSONDecoder(parse_constant=_no_constants)


class _Broken(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


class _Text:
    """A binary file's decoded text, read on demand: ``buf[pos:]`` is what is left, ``line`` the line at pos."""

    SPACE = " \t\r\n\ufeff"

    def __init__(self, read: Callable[[int], bytes]):
        self.read = read
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buf, self.pos, self.line, self.eof = "", 0, 1, False

    def more(self, size: int = CHUNK) -> None:
        """Drop what was consumed and append the next ``size`` bytes."""
        self.buf, self.pos = self.buf[self.pos :], 0
        data = self.read(size)
        try:
            self.buf += self.utf8.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            at = self.line + self.buf.count("\n") + data[: max(exc.start, 0)].count(b"\n")
            raise _Broken(at, "not valid UTF-8") from None
        self.eof = not data

    def peek(self) -> str | None:
        """The next character that is not white space (not consumed), or None at the end of the file."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in self.SPACE:
                self.line += self.buf[self.pos] == "\n"
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if self.eof:
                return None
            self.more()


class RecordReader:
    """One pass over a file. Iterate it for ``Record``s; ``digest`` is the sha256 of the bytes read so far."""

    def __init__(self, path: Path, container: str, *, max_record_bytes: int,
                 progress: Callable[[int], None] | None = None,
                 header_check: Callable[[list[str]], str | None] | None = None):
        self.path = path
        self.container = container
        self.max_record_bytes = max_record_bytes
        self.progress = progress
        self.header_check = header_check
        self._sha = hashlib.sha256()
        self._unreported = 0

    @property
    def digest(self) -> str:
        return self._sha.hexdigest()

    def _seen(self, data: bytes) -> bytes:
        self._sha.update(data)
        if self.progress is not None:
            self._unreported += len(data)
            if self._unreported >= PROGRESS_EVERY:
                self.progress(self._unreported)
                self._unreported = 0
        return data

    def __iter__(self) -> Iterator[Record]:
        with self.path.open("rb") as fh:
            if self.container == "csv":
                yield from self._csv(fh)
            elif sniff(self.path) == "array":
                yield from self._array(fh)
            else:
                yield from self._jsonl(fh)
        if self.progress is not None and self._unreported:
            self.progress(self._unreported)
            self._unreported = 0

    # --- JSON lines ---------------------------------------------------------------------------------------

    def _lines(self, fh: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
        """(line number, bytes) for each line; bytes is None for a line over the size limit (skipped)."""
        number = 0
        while raw := self._seen(fh.readline(self.max_record_bytes + 1)):
            number += 1
            if len(raw) > self.max_record_bytes and not raw.endswith(b"\n"):
                while (rest := self._seen(fh.readline(CHUNK))) and not rest.endswith(b"\n"):
                    pass
                yield number, None
                continue
            yield number, raw.removeprefix(BOM) if number == 1 else raw

    def _jsonl(self, fh: BinaryIO) -> Iterator[Record]:
        for number, raw in self._lines(fh):
            if raw is None:
                yield Record(number, error=RecordError("record", f"the line is longer than {self.max_record_bytes} bytes"))
                continue
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield Record(number, error=RecordError("record", f"not valid UTF-8 (byte {exc.start + 1} of the line)"))
                continue
            try:
                yield Record(number, _DECODER.decode(line))
            except json.JSONDecodeError as exc:
                hint = " (a pretty-printed JSON file must be one JSON array of records)" if number == 1 else ""
                yield Record(number, error=RecordError("record", f"not valid JSON: {exc.msg} at column {exc.colno}{hint}"))
            except ValueError as exc:
                yield Record(number, error=RecordError("record", str(exc)))

    # --- one JSON array -----------------------------------------------------------------------------------

    def _array(self, fh: BinaryIO) -> Iterator[Record]:
        """Elements of ``[ {...}, {...} ]`` one at a time. A syntax error ends the read: there is no reliable
        way to find where the next element starts."""
        text = _Text(lambda size: self._seen(fh.read(size)))
        try:
            if text.peek() != "[":
                raise _Broken(text.line, "expected a JSON array")
            text.pos += 1
            if text.peek() == "]":
                return
            while True:
                line = text.line
                yield Record(line, self._element(text))
                char = text.peek()
                if char == "]":
                    return  # anything after the closing bracket is ignored
                if char != ",":
                    found = "the end of the file" if char is None else repr(char)
                    raise _Broken(text.line, f"expected , or ] between records, got {found}")
                text.pos += 1
                text.peek()  # to the next element, so its line is where it starts
        except _Broken as broken:
            yield Record(broken.line, error=RecordError("record", broken.message))

    def _element(self, text: _Text) -> Any:
        """Decode the element at ``text.pos``, reading more while it may just be cut off."""
        while True:
            try:
                value, end = _DECODER.raw_decode(text.buf, text.pos)
            except json.JSONDecodeError as exc:
                too_big = len(text.buf) - text.pos > self.max_record_bytes
                if not text.eof and not too_big:
                    text.more(max(CHUNK, len(text.buf)))  # grows with the element: linear, not quadratic
                    continue
                message = f"a record larger than {self.max_record_bytes} bytes" if too_big else f"not valid JSON: {exc.msg}"
                raise _Broken(text.line + text.buf.count("\n", text.pos, exc.pos), message) from None
            except ValueError as exc:
                raise _Broken(text.line, str(exc)) from None
            text.line += text.buf.count("\n", text.pos, end)
            text.pos = end
            return value

    # --- CSV ----------------------------------------------------------------------------------------------

    def _csv(self, fh: BinaryIO) -> Iterator[Record]:
        """Rows as dicts keyed by the header. A row's line is the line it starts on (quoted fields may span
        lines). Bad UTF-8 is reported on its line; a CSV syntax error ends the read."""
        state = {"lines": 0}
        pending: list[Record] = []

        def text_lines() -> Iterator[str]:
            for number, raw in self._lines(fh):
                state["lines"] = number
                if raw is None:
                    pending.append(Record(number, error=RecordError("record", "the line is too long")))
                    continue
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    pending.append(Record(number, error=RecordError("record", f"not valid UTF-8 (byte {exc.start + 1})")))
                    yield raw.decode("utf-8", errors="replace")

        csv.field_size_limit(max(csv.field_size_limit(), self.max_record_bytes))
        reader = csv.reader(text_lines())
        header: list[str] | None = None
        while True:
            start = state["lines"] + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield from pending
                yield Record(state["lines"], error=RecordError("record", f"CSV error: {exc}; reading stopped here"))
                return
            yield from pending
            pending.clear()
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if header is None:
                header = [name.strip() for name in row]
                problem = self._header_problem(header)
                if problem:
                    yield Record(start, error=RecordError("header", problem))
                    return
                continue
            if len(row) != len(header):
                yield Record(start, error=RecordError("record", f"expected {len(header)} columns, got {len(row)}"))
                continue
            yield Record(start, dict(zip(header, row, strict=True)))
        yield from pending
        if header is None:
            yield Record(1, error=RecordError("header", "the CSV file has no header row"))

    def _header_problem(self, header: list[str]) -> str | None:
        if len(set(header)) != len(header):
            return f"the header names a column twice: {header}"
        return self.header_check(header) if self.header_check else None
