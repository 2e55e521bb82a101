"""``argilla``: Argilla-style records, ``{"fields": {"prompt", "response1", "response2", ...}, "metadata",
"responses": {"preference": [{"value": [{"value": "response1", "rank": 1}, ...]}]}}``. Responses are the
``responseN`` fields in order of N. Every submitted response to the ``preference`` question is a known
preference of its own (equal ranks are a tie group), by ``label_source:user_id`` (default label source
``"argilla"``; just the label source without a ``user_id``); a response without a ``status`` counts as
submitted. Discarded and draft responses are skipped and counted in a note, as are exact repeats of one
user's answer. ``metadata`` becomes the prompt's metadata."""
from __future__ import annotations

import re
from typing import Any

from ..services.items import ItemSpec, LabelSpec, PromptSpec, ResponseSpec
from .base import Context, Format, RecordError, distinct_labels, metadata, need_object, register, text

RESPONSE_FIELD = re.compile(r"response(\d+)")
STATUSES = ("submitted", "discarded", "draft")


@register
class Argilla(Format):
    name = "argilla"
    detect_order = 16
    help = "Argilla-style records: fields prompt / responseN and a ranking response named preference"

    @classmethod
    def detect(cls, record: Any) -> bool:
        return isinstance(record, dict) and isinstance(record.get("fields"), dict) and "responses" in record

    def parse(self, record: Any, ctx: Context) -> list[ItemSpec]:
        record = need_object(record)
        fields = need_object(record.get("fields"))
        names = sorted((int(m.group(1)), k) for k in fields if (m := RESPONSE_FIELD.fullmatch(k)))
        if len(names) < 2:
            raise RecordError("fields", "expected at least response1 and response2")
        order = [k for _, k in names]
        responses = [ResponseSpec(text=text(fields[k], f"fields.{k}", ctx)) for k in order]
        answers = need_object(record.get("responses")).get("preference")
        if not isinstance(answers, list) or not answers:
            raise RecordError("responses.preference", "expected a non-empty list of responses")
        labels = []
        for n, answer in enumerate(answers):
            at = f"responses.preference[{n}]"
            if not isinstance(answer, dict):
                raise RecordError(at, "expected a response object")
            status = answer.get("status", "submitted")  # files without a status hold submitted answers
            if status not in STATUSES:
                raise RecordError(f"{at}.status", f"must be one of {list(STATUSES)} (got {status!r})")
            if status != "submitted":
                ctx.note(f"{status} Argilla response(s) skipped")
                continue
            labels.append(LabelSpec(ranking=_ranking(answer.get("value"), f"{at}.value", order),
                                    source_name=ctx.annotator_source(answer.get("user_id"))))
        if not labels:
            ctx.note("record(s) with no submitted response imported without a label")
        prompt = PromptSpec(text=text(fields.get("prompt"), "fields.prompt", ctx),
                            metadata=metadata(record.get("metadata") or {}, "metadata", ctx))
        return [ItemSpec(prompt=prompt, responses=responses, labels=distinct_labels(labels, ctx))]


def _ranking(ranks: Any, at: str, order: list[str]) -> list[list[int]]:
    """Tie groups of response indexes, best first: equal ranks are a tie group."""
    if not isinstance(ranks, list) or sorted(str(r.get("value")) for r in ranks if isinstance(r, dict)) != sorted(order):
        raise RecordError(at, f"must rank each of {order} once")
    groups: dict[int, list[int]] = {}
    for r in ranks:
        if isinstance(r.get("rank"), bool) or not isinstance(r.get("rank"), int):
            raise RecordError(at, "each rank must be an integer")
        groups.setdefault(r["rank"], []).append(order.index(r["value"]))
    return [sorted(groups[k]) for k in sorted(groups)]
