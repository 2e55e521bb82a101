"""Exporters over canonical records (``selectors_governance``), the shape snapshots yield: each format is a
small module registering a ``RecordExporter`` whose ``rows`` turns one canonical record into zero or more rows
of the target format. ``stream`` writes JSON lines (or one JSON array) in blocks, constant memory;
``write`` puts the whole export into an open binary file, which binary formats (Parquet, a saved
Hugging Face dataset) override. ``RECORD_EXPORTERS`` lists them by name."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, ClassVar

import orjson

from ..errors import ValidationError
from .chat import hh_turns, render_chat
from .files import append_file

BLOCK_BYTES = 64 * 1024


def dumps(value: Any, *, sort_keys: bool = False, line: bool = False) -> bytes:
    """Compact JSON (UTF-8, no ASCII escapes) of an export row or part, by orjson, with a newline after it
    when ``line``: the standard library's encoder took a quarter of an export's time. orjson refuses
    integers beyond 64 bits, which free-form metadata may hold: those values go to the standard library,
    with the same separators."""
    try:
        return orjson.dumps(value, option=(orjson.OPT_SORT_KEYS if sort_keys else 0)
                            | (orjson.OPT_APPEND_NEWLINE if line else 0))
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        text = json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, separators=(",", ":"))
        return (text + "\n" if line else text).encode()


class RecordExporter:
    name: ClassVar[str]
    help: ClassVar[str] = ""
    extension: ClassVar[str] = "jsonl"
    content_type: ClassVar[str] = "application/x-ndjson; charset=utf-8"
    container: ClassVar[str] = "jsonl"  # "jsonl", "json-array" or "binary" (no streaming download)
    options: ClassVar[dict[str, tuple[str, ...]]] = {}  # name -> allowed values, default first

    def __init__(self, raw_options: Mapping[str, str] | None = None):
        raw = dict(raw_options or {})
        for key, value in raw.items():
            if key not in self.options:
                raise ValidationError(f"unknown option {key!r} for {self.name}; options: {sorted(self.options)}", field=key)
            if value not in self.options[key]:
                raise ValidationError(f"{key} must be one of {list(self.options[key])} (got {value!r})", field=key)
        self.opts = {k: raw.get(k, v[0]) for k, v in self.options.items()}
        self.rows_written = 0

    def rows(self, record: dict) -> Iterator[Any]:
        raise NotImplementedError

    def _all_rows(self, records: Iterable[dict]) -> Iterator[Any]:
        for record in records:
            for row in self.rows(record):
                self.rows_written += 1
                yield row

    def stream(self, records: Iterable[dict]) -> Iterator[bytes]:
        if self.container == "binary":
            raise ValidationError(f"{self.name} is a binary format: create an export job to get it", field="format")
        array = self.container == "json-array"
        block, size, first = [b"[\n"] if array else [], 0, True
        for row in self._all_rows(records):
            line = ((b"" if first else b",\n") + dumps(row)) if array else dumps(row, line=True)
            first = False
            block.append(line)
            size += len(line)
            if size >= BLOCK_BYTES:
                yield b"".join(block)
                block, size = [], 0
        if array:
            block.append(b"\n]\n")
        if block:
            yield b"".join(block)

    def write(self, records: Iterable[dict], fh: IO[bytes]) -> int:
        for chunk in self.stream(records):
            fh.write(chunk)
        return self.rows_written

    def splittable(self) -> bool:
        """Whether parts of the records (runs of whole items, in order) may be written to files of their own
        by separate processes and then joined by ``combine`` into the file ``write`` would give."""
        return self.container == "jsonl"

    def preload(self) -> None:
        """Import what ``write`` needs: called before the processes writing parts are forked, so that they
        share those modules' memory with the parent rather than each loading its own copy."""

    def combine(self, parts: Iterable[Path], fh: IO[bytes]) -> None:
        for part in parts:  # JSON lines join by concatenation: the same bytes as one pass
            append_file(fh, part)


RECORD_EXPORTERS: dict[str, type[RecordExporter]] = {}


def register(cls: type[RecordExporter]) -> type[RecordExporter]:
    RECORD_EXPORTERS[cls.name] = cls
    return cls


def record_exporter_get(name: str, raw_options: Mapping[str, str] | None = None) -> RecordExporter:
    if name not in RECORD_EXPORTERS:
        raise ValidationError(f"unknown export format {name!r}; use one of {sorted(RECORD_EXPORTERS)}", field="format")
    return RECORD_EXPORTERS[name](raw_options)


# --- helpers the format modules share -------------------------------------------------------------------


def decisive_pair(record: dict) -> tuple[int, int] | None:
    """(winner, loser) indexes of a two-response record with a winner, else None."""
    j = record["judgment"]
    if j["winner"] is None or len(record["responses"]) != 2:
        return None
    return j["winner"], 1 - j["winner"]


def ordered_pairs(record: dict) -> Iterator[tuple[int, int, str]]:
    """(better, worse, label) index pairs a record orders: across its ranking's tie groups ("preference"),
    within a group ("tie"), or every pair of a both-bad record ("both_bad")."""
    j, n = record["judgment"], len(record["responses"])
    if j["both_bad"]:
        for a in range(n):
            for b in range(a + 1, n):
                yield a, b, "both_bad"
        return
    groups = j["ranking"]
    for at, group in enumerate(groups):
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                yield a, b, "tie"
        for worse in groups[at + 1:]:
            for a in group:
                for b in worse:
                    yield a, b, "preference"


def prompt_messages(prompt: dict) -> list[dict]:
    """The prompt as chat messages: stored messages, an HH transcript split into turns, or one user turn."""
    if prompt["kind"] == "chat":
        return [dict(m) for m in prompt["messages"]]
    return hh_turns(prompt["text"]) or [{"role": "user", "content": prompt["text"]}]


def prompt_text(prompt: dict) -> str:
    return render_chat(prompt["messages"]) if prompt["kind"] == "chat" else prompt["text"]


def is_hh_transcript(prompt: dict) -> bool:
    """Whether the prompt is an HH transcript (text from "\\n\\nHuman: " to "\\n\\nAssistant:")."""
    return prompt["kind"] == "text" and hh_turns(prompt["text"]) is not None


def answer_text(prompt: dict, text: str) -> str:
    """A response as a chat message's content: an HH transcript's response starts with the one space that
    belongs to its "Assistant:" marker, dropped here as TRL's conversational split does."""
    return text.removeprefix(" ") if is_hh_transcript(prompt) else text
