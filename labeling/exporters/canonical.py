"""``canonical``: the platform's lossless JSON lines, one canonical record per line (see
``selectors_governance``): every judgment with its shown order, strength, rationale, timing, annotator
pseudonym, split and lineage ids. ``importers.canonical`` reads it back."""
from __future__ import annotations

from collections.abc import Iterator

from .records import RecordExporter, register


@register
class Canonical(RecordExporter):
    name = "canonical"
    help = "Loopwise canonical JSON lines: lossless (all judgments, shown order, strength, rationale, lineage)"

    def rows(self, record: dict) -> Iterator[dict]:
        yield record
