"""What every import format shares: the record error, the per-record context, field checks and the registry.

A format is a small class registered with ``@register``: it names the container it reads (JSON records or
CSV rows), says whether it yields prompts or comparison items, may recognise a first record for ``auto``,
and turns one record into specs (or raises ``RecordError`` naming the field at fault). Field checks live here
so every format reports the same problems the same way."""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings

from ..errors import ValidationError
from ..models import Prompt
from ..services.items import ItemSpec, LabelSpec, PromptSpec, ResponseSpec

CHAT_ROLES = ("system", "user", "assistant", "tool")
SPLITS = tuple(v for v in Prompt.Split.values if v)
MAX_EXTERNAL_ID = 200
# A NUL cannot be stored by PostgreSQL (text or jsonb); a lone surrogate cannot be encoded as UTF-8. Both
# decode fine from JSON escapes, so they are caught here rather than as a database error half-way through.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class RecordError(Exception):
    """One record's problem. ``skippable`` marks problems a user may choose to skip (counted in the report)
    instead of rejecting the file, e.g. an HH transcript that does not split into prompt and responses."""

    def __init__(self, field: str, message: str, *, skippable: bool = False):
        super().__init__(message)
        self.field = field
        self.message = message
        self.skippable = skippable


class ImportRejected(ValidationError):
    """The file has errors; nothing was written. ``details["errors"]`` lists them by line and field."""


@dataclass
class Context:
    """Per-import state a format may use: the label's source name and counted notes for the report."""

    label_source: str
    max_chars: int = field(default_factory=lambda: settings.LOOPWISE_MAX_TEXT_CHARS)
    notes: Counter = field(default_factory=Counter)

    def note(self, message: str) -> None:
        self.notes[message] += 1

    def annotator_source(self, who: Any) -> str:
        """The source name of one annotator's label: ``label_source:annotator`` (the tool's user id or
        pseudonym), so several annotators' judgments of an item stay apart; just ``label_source`` if unnamed."""
        if isinstance(who, dict):  # Label Studio may expand completed_by to the user object
            who = who.get("id", who.get("email"))
        if who is None or isinstance(who, bool) or not isinstance(who, str | int) or str(who).strip() == "":
            return self.label_source
        return f"{self.label_source}:{who}"[:200]


class Format:
    name: ClassVar[str]
    container: ClassVar[str] = "json"  # "json": JSON lines or one JSON array; "csv": a CSV file with a header
    produces: ClassVar[str] = "items"  # "items" (comparison items, with their labels) or "prompts"
    help: ClassVar[str] = ""
    # ``auto`` asks formats in this order, so a more specific shape (ShareGPT also has chosen / rejected)
    # is recognised before a more general one.
    detect_order: ClassVar[int] = 100

    @classmethod
    def detect(cls, record: Any) -> bool:
        """Does this (first) record look like this format? Used by ``auto``."""
        return False

    def parse(self, record: Any, ctx: Context) -> list[ItemSpec] | list[PromptSpec]:
        raise NotImplementedError


FORMATS: dict[str, type[Format]] = {}


def register(cls: type[Format]) -> type[Format]:
    FORMATS[cls.name] = cls
    return cls


def format_get(name: str) -> type[Format]:
    if name not in FORMATS:
        raise ValidationError(f"unknown import format {name!r}; use auto or one of {sorted(FORMATS)}", field="format")
    return FORMATS[name]


def format_detect(record: Any) -> type[Format] | None:
    for cls in sorted(FORMATS.values(), key=lambda f: f.detect_order):
        if cls.detect(record):
            return cls
    return None


# --- field checks -------------------------------------------------------------------------------------------


def need_object(record: Any) -> dict:
    if not isinstance(record, dict):
        raise RecordError("record", f"expected a JSON object, got {_type_name(record)}")
    return record


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def check_storable(value: str, where: str) -> None:
    bad = _UNSTORABLE.search(value)
    if bad:
        what = "a NUL character" if bad.group() == "\x00" else f"an unpaired surrogate (U+{ord(bad.group()):04X})"
        raise RecordError(where, f"contains {what}, which cannot be stored")


def text(value: Any, where: str, ctx: Context) -> str:
    """A non-empty string within the length limit, returned exactly as given (never stripped)."""
    if value is None:
        raise RecordError(where, "missing")
    if not isinstance(value, str):
        raise RecordError(where, f"expected a string, got {_type_name(value)}")
    if not value.strip():
        raise RecordError(where, "is empty")
    if len(value) > ctx.max_chars:
        raise RecordError(
            where, f"is {len(value)} characters long; the limit is {ctx.max_chars} (LOOPWISE_MAX_TEXT_CHARS)"
        )
    check_storable(value, where)
    return value


def messages(value: Any, where: str, ctx: Context, *, role_key: str = "role", content_key: str = "content",
             roles: dict[str, str] | None = None) -> list[dict]:
    """A non-empty list of chat messages, returned as ``[{"role", "content"}]`` (other keys dropped).
    ``roles`` maps source role names to ours (ShareGPT's human / gpt); by default ours are taken as they are."""
    if not isinstance(value, list) or not value:
        raise RecordError(where, f"expected a non-empty list of messages, got {_type_name(value)}")
    roles = roles or {r: r for r in CHAT_ROLES}
    out = []
    for i, message in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(message, dict):
            raise RecordError(at, f"expected a message object, got {_type_name(message)}")
        role = message.get(role_key)
        if role not in roles:
            raise RecordError(f"{at}.{role_key}", f"role must be one of {sorted(roles)} (got {role!r})")
        out.append({"role": roles[role], "content": text(message.get(content_key), f"{at}.{content_key}", ctx)})
    return out


def chat_prompt(value: Any, where: str, ctx: Context, **kw: Any) -> list[dict]:
    """Messages that a response can follow: at least one, and the last one not the assistant's."""
    found = messages(value, where, ctx, **kw)
    if found[-1]["role"] == "assistant":
        raise RecordError(where, "the prompt's last message is the assistant's: there is nothing left to respond to")
    return found


def metadata(value: Any, where: str, ctx: Context) -> dict:
    if not isinstance(value, dict):
        raise RecordError(where, f"expected an object, got {_type_name(value)}")
    return storable_json(value, where, ctx)


def storable_json(value: Any, where: str, ctx: Context) -> Any:
    """Any JSON value, checked to fit in a jsonb column and within the text limit once serialised."""
    encoded = json.dumps(value, ensure_ascii=False)
    if len(encoded) > ctx.max_chars:
        raise RecordError(where, f"is {len(encoded)} characters as JSON; the limit is {ctx.max_chars}")
    for string in _strings(value):
        check_storable(string, where)
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def external_id(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError(where, f"expected a string or an integer, got {_type_name(value)}")
    value = str(value)
    if len(value) > MAX_EXTERNAL_ID:
        raise RecordError(where, f"is longer than {MAX_EXTERNAL_ID} characters")
    check_storable(value, where)
    return value


def split(value: Any, where: str) -> str:
    if value in (None, ""):
        return ""
    if value not in SPLITS:
        raise RecordError(where, f"must be one of {list(SPLITS)} or empty (got {value!r})")
    return value


def pair_item(*, prompt: PromptSpec, chosen: str, rejected: str, ctx: Context, item_metadata: dict) -> ItemSpec:
    """A two-response item with its known preference: chosen first, stored as an imported judgment."""
    if chosen == rejected:
        raise RecordError("rejected", "is the same text as chosen: there is no preference to record")
    return ItemSpec(
        prompt=prompt,
        responses=[ResponseSpec(text=chosen), ResponseSpec(text=rejected)],
        label=LabelSpec(ranking=[[0], [1]], source_name=ctx.label_source),
        metadata=item_metadata,
    )


def distinct_labels(labels: list[LabelSpec], ctx: Context) -> list[LabelSpec]:
    """The labels of one item less exact repeats (same source, same answer), which are counted in a note:
    the same person's identical annotation twice is one judgment, two people's are two."""
    seen, kept = set(), []
    for label in labels:
        key = (label.source_name, json.dumps(label.ranking), label.strength, label.both_bad)
        if key in seen:
            ctx.note("an exact repeat of an annotator's annotation of the same task was stored once")
            continue
        seen.add(key)
        kept.append(label)
    return kept


def extras(record: dict, known: set[str], ctx: Context) -> dict:
    """Keys a format does not read, kept as metadata (checked to be storable) rather than dropped."""
    return {k: storable_json(v, k, ctx) for k, v in record.items() if k not in known}
