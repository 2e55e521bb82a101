"""Exporting judgments as training data. ``exporter_get(name, options)`` gives a registered exporter whose
``stream(judgments)`` yields the file's bytes; each format is a small module registering an ``Exporter``
(see ``base``)."""
from __future__ import annotations

from . import trl_preference  # noqa: F401  (registers its exporter)
from .base import EXPORTERS, Exporter, exporter_get

__all__ = ["EXPORTERS", "Exporter", "exporter_get"]
