"""Importing prompts and labelled comparison pairs from files. ``import_file`` is the entry point; each
format is a small module registering a ``Format`` (see ``base``); ``FORMATS`` lists them by name."""
from __future__ import annotations

from . import argilla, chat_formats, hh_rlhf, labelstudio, prompts, self_instruct, sharegpt, trl  # noqa: F401  (each registers its format)  # noqa: F401  (formats the snapshot exporters write)
from .base import FORMATS, ImportRejected
from .service import ImportReport, import_file

__all__ = ["FORMATS", "ImportRejected", "ImportReport", "import_file"]
