"""Prompt-only formats: prompts that a policy will answer later (no responses, no labels).

``prompts-jsonl``: one JSON object per line (or one JSON array of them) with either ``"prompt"`` (a string,
or a list of chat messages) or ``"messages"`` (chat messages), and optionally ``"metadata"`` (an object),
``"id"`` (kept as the prompt's external id) and ``"split"`` (train / validation / test). Any other key is kept
in the prompt's metadata under its own name, so ``{"prompt", "response"}`` instruction data keeps its reference
answer as ``metadata["response"]``; a key given both ways keeps the ``metadata`` object's value.

``prompts-csv``: a header row with a ``prompt`` column; ``id`` and ``split`` columns mean what they mean in
JSON; every other column goes into metadata as a string.

A prompt already in the campaign (same text, or same messages) is not created again: it is reported as a
duplicate, with its line, and the existing prompt keeps its metadata."""
from __future__ import annotations

from typing import Any

from ..services.items import PromptSpec
from .base import (
    Context,
    Format,
    RecordError,
    chat_prompt,
    external_id,
    extras,
    metadata,
    need_object,
    register,
    split,
    text,
)

KNOWN = {"prompt", "messages", "metadata", "id", "split"}
KNOWN_CSV = {"prompt", "id", "split"}


def _prompt_body(record: dict, ctx: Context) -> PromptSpec:
    if "prompt" in record and "messages" in record:
        raise RecordError("messages", 'give either "prompt" or "messages", not both')
    if "messages" in record:
        return PromptSpec(messages=chat_prompt(record["messages"], "messages", ctx))
    if "prompt" not in record:
        raise RecordError("prompt", 'missing: each record needs "prompt" (text or chat messages) or "messages"')
    value = record["prompt"]
    if isinstance(value, list):
        return PromptSpec(messages=chat_prompt(value, "prompt", ctx))
    return PromptSpec(text=text(value, "prompt", ctx))


@register
class PromptsJsonl(Format):
    name = "prompts-jsonl"
    detect_order = 90
    produces = "prompts"
    help = 'prompts to generate for: {"prompt": text or messages} or {"messages": [...]}'

    @classmethod
    def detect(cls, record: Any) -> bool:
        return isinstance(record, dict) and ("prompt" in record or "messages" in record)

    def parse(self, record: Any, ctx: Context) -> list[PromptSpec]:
        record = need_object(record)
        spec = _prompt_body(record, ctx)
        spec.metadata = extras(record, KNOWN, ctx)
        if "metadata" in record:
            spec.metadata.update(metadata(record["metadata"], "metadata", ctx))
        spec.external_id = external_id(record.get("id"), "id")
        spec.split = split(record.get("split"), "split")
        return [spec]


@register
class PromptsCsv(Format):
    name = "prompts-csv"
    container = "csv"
    produces = "prompts"
    help = "prompts as CSV with a header row holding a prompt column"

    @staticmethod
    def header_check(header: list[str]) -> str | None:
        return None if "prompt" in header else f"the header has no 'prompt' column (it has {header})"

    def parse(self, record: Any, ctx: Context) -> list[PromptSpec]:
        return [
            PromptSpec(
                text=text(record["prompt"], "prompt", ctx),
                metadata=extras(record, KNOWN_CSV, ctx),
                external_id=external_id(record.get("id") or None, "id"),
                split=split(record.get("split"), "split"),
            )
        ]
