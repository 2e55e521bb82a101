"""What every exporter shares: options as a frozen dataclass whose fields list their allowed values, the
registry, and streaming JSON lines in constant memory.

An exporter turns judgments into dicts: ``records`` from model instances (``selectors.judgments_for_export``
joins the prompt and prefetches the item's responses), ``row_records`` from plain rows. ``stream`` given a
queryset reads it as plain rows (``selectors_records.judgment_rows``: its SQL, the items' and their
responses', as three server-side-cursor streams read ``chunk_size`` rows at a time), and yields the lines in blocks of
about ``BLOCK_BYTES``."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from django.db.models import QuerySet

from ..errors import ValidationError
from ..models import Judgment
from ..selectors_records import ItemContext, judgment_rows
from .records import dumps

BLOCK_BYTES = 64 * 1024


def choice(default: str, *choices: str, help: str = "") -> Any:
    """An option field taking one of ``choices`` (``default`` first among them)."""
    return field(default=default, metadata={"choices": (default, *[c for c in choices if c != default]), "help": help})


@dataclass(frozen=True)
class Options:
    """Base of an exporter's options. Every field is a ``choice``."""


class Exporter:
    name: ClassVar[str]
    content_type: ClassVar[str] = "application/x-ndjson; charset=utf-8"
    extension: ClassVar[str] = "jsonl"
    options_class: ClassVar[type[Options]] = Options
    help: ClassVar[str] = ""

    def __init__(self, options: Options | None = None, *, chunk_size: int = 1000):
        self.options = options if options is not None else self.options_class()
        self.chunk_size = chunk_size

    @classmethod
    def option_choices(cls) -> dict[str, tuple[str, ...]]:
        return {f.name: f.metadata["choices"] for f in fields(cls.options_class)}

    @classmethod
    def parse_options(cls, raw: Mapping[str, str]) -> Options:
        """Options from strings (query parameters, command-line flags). A bad one is a ValidationError whose
        field is the option's name."""
        allowed = cls.option_choices()
        for key, value in raw.items():
            if key not in allowed:
                raise ValidationError(f"unknown option {key!r} for {cls.name}; options: {sorted(allowed)}", field=key)
            if value not in allowed[key]:
                raise ValidationError(f"{key} must be one of {list(allowed[key])} (got {value!r})", field=key)
        return cls.options_class(**raw)

    def records(self, judgments: Iterable[Judgment]) -> Iterator[dict]:
        raise NotImplementedError

    def row_records(self, rows: Iterable[tuple[dict, ItemContext]]) -> Iterator[dict]:
        """The same records from plain rows (``selectors_records.judgment_rows``): (judgment row, its
        item's context)."""
        raise NotImplementedError

    def stream(self, judgments: QuerySet[Judgment] | Iterable[Judgment]) -> Iterator[bytes]:
        if isinstance(judgments, QuerySet):
            # Plain rows, not model instances with a prefetch: several times cheaper per judgment, and the
            # queryset's filters and order are kept (its SQL is reused).
            records = self.row_records(judgment_rows(judgments, chunk=self.chunk_size))
        else:
            records = self.records(judgments)
        block, size = [], 0
        for record in records:
            line = dumps(record, line=True)
            block.append(line)
            size += len(line)
            if size >= BLOCK_BYTES:
                yield b"".join(block)
                block, size = [], 0
        if block:
            yield b"".join(block)


EXPORTERS: dict[str, type[Exporter]] = {}


def register(cls: type[Exporter]) -> type[Exporter]:
    EXPORTERS[cls.name] = cls
    return cls


def exporter_get(name: str, raw_options: Mapping[str, str] | None = None, **kwargs: Any) -> Exporter:
    """The exporter called ``name`` with its options parsed from ``raw_options``."""
    if name not in EXPORTERS:
        raise ValidationError(f"unknown export format {name!r}; use one of {sorted(EXPORTERS)}", field="format")
    cls = EXPORTERS[name]
    return cls(cls.parse_options(raw_options or {}), **kwargs)
