"""``hh-rlhf``: Anthropic's HH-RLHF in its original form, ``{"chosen": transcript, "rejected": transcript}`` with
transcripts like ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``.

Split rule (the one used to cut the project's ``hh_pairs_*.jsonl`` files, so both import to the same items):
the prompt is the transcript up to and including its last ``"\\n\\nAssistant:"``, kept as a text prompt; the
two responses are what follows it, verbatim (the leading space included), so ``prompt + chosen`` is the
original transcript byte for byte. Both transcripts must give the same prompt.

Some records do not split: the last assistant turn is empty, or the transcripts differ before the last
assistant turn (typically ``Human:`` written inside an assistant turn without line breaks). These are
errors by default, naming the line; ``skip_unsplittable`` skips them instead and lists them in the report.
The preference is stored as an imported judgment by ``label_source`` (default ``"hh-rlhf"``)."""
from __future__ import annotations

from typing import Any

from ..services.items import ItemSpec, PromptSpec
from .base import Context, Format, RecordError, extras, need_object, pair_item, register, text

MARKER = "\n\nAssistant:"
KNOWN = {"chosen", "rejected"}


def _unsplittable(field: str, message: str) -> RecordError:
    return RecordError(field, message + " (skip such records with skip_unsplittable)", skippable=True)


def _cut(transcript: str, field: str) -> int:
    at = transcript.rfind(MARKER)
    if at < 0:
        raise _unsplittable(field, 'has no "\\n\\nAssistant:" turn')
    return at + len(MARKER)


@register
class HhRlhf(Format):
    name = "hh-rlhf"
    detect_order = 20
    help = 'raw HH-RLHF: {"chosen", "rejected"} whole "\\n\\nHuman: ... \\n\\nAssistant: ..." transcripts'

    @classmethod
    def detect(cls, record: Any) -> bool:
        return (
            isinstance(record, dict)
            and "prompt" not in record
            and isinstance(record.get("chosen"), str)
            and record["chosen"].startswith("\n\nHuman:")
        )

    def parse(self, record: Any, ctx: Context) -> list[ItemSpec]:
        record = need_object(record)
        chosen = text(record.get("chosen"), "chosen", ctx)
        rejected = text(record.get("rejected"), "rejected", ctx)
        c_cut, r_cut = _cut(chosen, "chosen"), _cut(rejected, "rejected")
        prompt = chosen[:c_cut]
        if prompt != rejected[:r_cut]:
            differ = next((i for i, (a, b) in enumerate(zip(chosen, rejected, strict=False)) if a != b), 0)
            raise _unsplittable(
                "rejected",
                f"chosen and rejected differ before their last assistant turn (from character {differ + 1}), "
                "so they do not split into one prompt and two responses",
            )
        for field, rest in (("chosen", chosen[c_cut:]), ("rejected", rejected[r_cut:])):
            if not rest.strip():
                raise _unsplittable(field, "the last assistant turn is empty")
        return [
            pair_item(
                prompt=PromptSpec(text=prompt),
                chosen=chosen[c_cut:],
                rejected=rejected[r_cut:],
                ctx=ctx,
                item_metadata=extras(record, KNOWN, ctx),
            )
        ]
