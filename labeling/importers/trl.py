"""``trl``: TRL's preference format, one comparison item per record with its known preference.

Standard: ``{"prompt": str, "chosen": str, "rejected": str}``: the prompt becomes a text prompt, the two
completions the item's responses, verbatim. Conversational: ``"prompt"`` a list of ``{"role", "content"}``
messages (a chat prompt) and ``"chosen"`` / ``"rejected"`` each one assistant message, whose content becomes
the response text.

Implicit prompt (no ``"prompt"``, or a string prompt beside conversational completions, which TRL also reads
as implicit): the prompt is what ``chosen`` and ``rejected`` share at the start, as TRL's ``extract_prompt``
cuts it: for message lists, the common leading messages (each side must then end in one assistant message);
for strings, the longest common prefix of characters, moved back by one when it ends in a space so that the
space starts the completions.

``margin`` (a number) has no documented relation to our 1-3 strength, so it is kept as the item's
``metadata["margin"]``; any other key is kept in the item's metadata too. The preference is stored as an
imported judgment, chosen first, by ``label_source`` (default ``"trl"``)."""
from __future__ import annotations

from typing import Any

from ..services.items import ItemSpec, PromptSpec
from .base import (
    Context,
    Format,
    RecordError,
    chat_prompt,
    extras,
    messages,
    need_object,
    pair_item,
    register,
    text,
)

KNOWN = {"prompt", "chosen", "rejected", "margin"}


def _one_assistant(found: list[dict], where: str) -> str:
    if len(found) != 1 or found[0]["role"] != "assistant":
        roles = [m["role"] for m in found]
        raise RecordError(where, f"expected one assistant message, got {len(found)} message(s) with roles {roles}")
    return found[0]["content"]


def _implicit_strings(chosen: str, rejected: str, ctx: Context) -> tuple[PromptSpec, str, str]:
    shortest = min(len(chosen), len(rejected))
    cut = next((i for i in range(shortest) if chosen[i] != rejected[i]), shortest)
    if cut == shortest:
        raise RecordError("rejected", "chosen and rejected do not differ after their shared beginning")
    if cut > 0 and chosen[cut - 1] == " ":
        cut -= 1
    if cut == 0:
        raise RecordError("prompt", 'missing, and chosen and rejected share no beginning to take as the prompt')
    prompt = text(chosen[:cut], "prompt", ctx)
    return PromptSpec(text=prompt), text(chosen[cut:], "chosen", ctx), text(rejected[cut:], "rejected", ctx)


def _implicit_messages(chosen: list[dict], rejected: list[dict]) -> tuple[PromptSpec, str, str]:
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise RecordError("prompt", "missing, and chosen and rejected share no leading messages to take as the prompt")
    prompt = chosen[:shared]
    if prompt[-1]["role"] == "assistant":
        raise RecordError("chosen", "the shared messages end with the assistant's: there is nothing left to respond to")
    c = _one_assistant(chosen[shared:], f"chosen[{shared}:]")
    r = _one_assistant(rejected[shared:], f"rejected[{shared}:]")
    return PromptSpec(messages=prompt), c, r


def _split(record: dict, ctx: Context) -> tuple[PromptSpec, str, str]:
    for key in ("chosen", "rejected"):
        if key not in record:
            raise RecordError(key, "missing")
    chosen, rejected, prompt = record["chosen"], record["rejected"], record.get("prompt")
    conversational = isinstance(chosen, list)
    if isinstance(rejected, list) != conversational:
        raise RecordError("rejected", "chosen and rejected must both be strings or both be message lists")
    if conversational:
        chosen, rejected = messages(chosen, "chosen", ctx), messages(rejected, "rejected", ctx)
        if isinstance(prompt, list):
            spec = PromptSpec(messages=chat_prompt(prompt, "prompt", ctx))
            return spec, _one_assistant(chosen, "chosen"), _one_assistant(rejected, "rejected")
        if prompt is not None:
            ctx.note("a string prompt beside conversational completions was ignored: the prompt was taken "
                     "from the messages chosen and rejected share (TRL reads such records the same way)")
        else:
            ctx.note("implicit prompt: taken from the leading messages chosen and rejected share")
        return _implicit_messages(chosen, rejected)
    chosen, rejected = text(chosen, "chosen", ctx), text(rejected, "rejected", ctx)
    if prompt is None:
        ctx.note("implicit prompt: taken as the longest common beginning of chosen and rejected (TRL's rule)")
        return _implicit_strings(chosen, rejected, ctx)
    if isinstance(prompt, list):
        raise RecordError("chosen", "the prompt is a message list, so chosen and rejected must be message lists too")
    return PromptSpec(text=text(prompt, "prompt", ctx)), chosen, rejected


@register
class Trl(Format):
    name = "trl"
    detect_order = 30
    help = 'TRL preference pairs: {"prompt", "chosen", "rejected"} as strings or chat messages (prompt optional)'

    @classmethod
    def detect(cls, record: Any) -> bool:
        return isinstance(record, dict) and "chosen" in record and "rejected" in record

    def parse(self, record: Any, ctx: Context) -> list[ItemSpec]:
        record = need_object(record)
        prompt, chosen, rejected = _split(record, ctx)
        item_metadata = extras(record, KNOWN, ctx)
        if "margin" in record:
            margin = record["margin"]
            if isinstance(margin, bool) or not isinstance(margin, int | float):
                raise RecordError("margin", f"expected a number, got {margin!r}")
            item_metadata["margin"] = margin
            ctx.note("margin kept in the item's metadata (it has no documented mapping to a 1-3 strength)")
        return [pair_item(prompt=prompt, chosen=chosen, rejected=rejected, ctx=ctx, item_metadata=item_metadata)]
