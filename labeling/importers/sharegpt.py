"""``sharegpt``: LLaMA-Factory's ShareGPT-style preference data,
``{"conversations": [{"from", "value"}, ...], "chosen": {"from": "gpt", "value"}, "rejected": {...}}``, as JSON
lines or as one JSON array (LLaMA-Factory ships its demo files as arrays).

The conversation becomes a chat prompt, roles mapped ``human`` -> user, ``gpt`` -> assistant, ``system`` ->
system, ``observation`` -> tool, ``function_call`` -> assistant (its text kept as the content); messages
written as ``{"role", "content"}`` are read too. A top-level ``"system"`` string becomes a leading system
message. The chosen and rejected turns' ``value`` become the two responses, verbatim; other keys (``tools``...)
are kept in the item's metadata. The preference is an imported judgment by ``label_source`` (default
``"sharegpt"``)."""
from __future__ import annotations

from typing import Any

from ..services.items import ItemSpec, PromptSpec
from .base import Context, Format, RecordError, chat_prompt, extras, need_object, pair_item, register, text

ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "assistant",
    "system": "system",
    "observation": "tool",
    "tool": "tool",
}
KNOWN = {"conversations", "chosen", "rejected", "system"}


def _keys(turn: Any) -> tuple[str, str]:
    return ("from", "value") if isinstance(turn, dict) and "from" in turn else ("role", "content")


def _answer(record: dict, field: str, ctx: Context) -> str:
    turn = record.get(field)
    if not isinstance(turn, dict):
        raise RecordError(field, 'expected a turn object like {"from": "gpt", "value": "..."}')
    role_key, content_key = _keys(turn)
    if ROLES.get(turn.get(role_key)) != "assistant":
        raise RecordError(f"{field}.{role_key}", f"expected an assistant turn (gpt), got {turn.get(role_key)!r}")
    return text(turn.get(content_key), f"{field}.{content_key}", ctx)


@register
class ShareGpt(Format):
    name = "sharegpt"
    detect_order = 10
    help = 'LLaMA-Factory ShareGPT preference: {"conversations": [{"from", "value"}], "chosen": {...}, "rejected": {...}}'

    @classmethod
    def detect(cls, record: Any) -> bool:
        return isinstance(record, dict) and "conversations" in record

    def parse(self, record: Any, ctx: Context) -> list[ItemSpec]:
        record = need_object(record)
        turns = record.get("conversations")
        role_key, content_key = _keys(turns[0] if isinstance(turns, list) and turns else None)
        prompt = chat_prompt(turns, "conversations", ctx, role_key=role_key, content_key=content_key, roles=ROLES)
        if "system" in record:
            prompt.insert(0, {"role": "system", "content": text(record["system"], "system", ctx)})
        return [
            pair_item(
                prompt=PromptSpec(messages=prompt),
                chosen=_answer(record, "chosen", ctx),
                rejected=_answer(record, "rejected", ctx),
                ctx=ctx,
                item_metadata=extras(record, KNOWN, ctx),
            )
        ]
