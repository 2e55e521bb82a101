"""``argilla``: Argilla-style records, ``{"fields": {"prompt", "response1", "response2", ...}, "metadata",
"responses": {"preference": [{"value": [{"value": "response1", "rank": 1}, ...]}]}}``. Responses are the
``responseN`` fields in order of N; the first response to the ``preference`` question is the known
preference (equal ranks are a tie group), by ``label_source`` (default ``"argilla"``); ``metadata`` becomes
the prompt's metadata."""
from __future__ import annotations

import re
from typing import Any

from ..services.items import ItemSpec, LabelSpec, PromptSpec, ResponseSpec
from .base import Context, Format, RecordError, metadata, need_object, register, text

RESPONSE_FIELD = re.compile(r"response(\d+)")


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
        ranks = need_object(answers[0]).get("value")
        if not isinstance(ranks, list) or sorted(str(r.get("value")) for r in ranks if isinstance(r, dict)) != sorted(order):
            raise RecordError("responses.preference[0].value", f"must rank each of {order} once")
        groups: dict[int, list[int]] = {}
        for r in ranks:
            if isinstance(r.get("rank"), bool) or not isinstance(r.get("rank"), int):
                raise RecordError("responses.preference[0].value", "each rank must be an integer")
            groups.setdefault(r["rank"], []).append(order.index(r["value"]))
        prompt = PromptSpec(text=text(fields.get("prompt"), "fields.prompt", ctx),
                            metadata=metadata(record.get("metadata") or {}, "metadata", ctx))
        label = LabelSpec(ranking=[sorted(groups[k]) for k in sorted(groups)], source_name=ctx.label_source)
        return [ItemSpec(prompt=prompt, responses=responses, label=label)]
