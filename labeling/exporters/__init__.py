"""Exporting judgments as training data. ``exporter_get(name, options)`` gives a registered exporter whose
``stream(judgments)`` yields the file's bytes; each format is a small module registering an ``Exporter``
(see ``base``). Snapshots export through ``records``: exporters over canonical records, one small module
per format."""
from __future__ import annotations

from . import (  # noqa: F401  (record formats)
    canonical,
    chat_formats,
    hf,
    hh_records,
    labelstudio,
    trl_preference,  # noqa: F401  (registers its exporter)
    trl_records,
)
from .base import EXPORTERS, Exporter, exporter_get
from .records import RECORD_EXPORTERS, RecordExporter, record_exporter_get

__all__ = ["EXPORTERS", "RECORD_EXPORTERS", "Exporter", "RecordExporter", "exporter_get", "record_exporter_get"]
