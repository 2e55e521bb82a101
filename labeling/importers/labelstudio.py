"""``label-studio``: Label Studio tasks (a JSON array, or JSON lines) with a ``pairwise`` result
(``data.prompt`` / ``answer1`` / ``answer2``, ``selected`` left = answer1) or a ``ranker`` result over
``data.items`` (``[{"id", "body"}]``, ids best first). The first annotation's result is stored as the known
preference, by ``label_source`` (default ``"label-studio"``); further annotations are counted in a note.
``data`` keys other than the prompt and the responses are kept in the item's metadata."""
from __future__ import annotations

from typing import Any

from ..services.items import ItemSpec, LabelSpec, PromptSpec, ResponseSpec
from .base import Context, Format, RecordError, extras, need_object, register, text


def _result(task: dict, ctx: Context) -> dict:
    annotations = task.get("annotations")
    if not isinstance(annotations, list) or not annotations:
        raise RecordError("annotations", "expected a non-empty list of annotations")
    if len(annotations) > 1:
        ctx.note("only the first annotation of a task was imported")
    results = need_object(annotations[0]).get("result")
    found = [r for r in results or [] if isinstance(r, dict) and r.get("type") in ("pairwise", "ranker")]
    if len(found) != 1:
        raise RecordError("annotations[0].result", "expected exactly one pairwise or ranker result")
    return found[0]


@register
class LabelStudio(Format):
    name = "label-studio"
    detect_order = 15
    help = "Label Studio tasks with a pairwise or ranker result"

    @classmethod
    def detect(cls, record: Any) -> bool:
        return isinstance(record, dict) and isinstance(record.get("data"), dict) and "annotations" in record

    def parse(self, record: Any, ctx: Context) -> list[ItemSpec]:
        task = need_object(record)
        data = need_object(task.get("data"))
        prompt = PromptSpec(text=text(data.get("prompt"), "data.prompt", ctx))
        result = _result(task, ctx)
        value = result.get("value") or {}
        if result["type"] == "pairwise":
            responses = [text(data.get(k), f"data.{k}", ctx) for k in ("answer1", "answer2")]
            selected = value.get("selected")
            if selected not in ("left", "right"):
                raise RecordError("result.value.selected", f"expected left or right (got {selected!r})")
            ranking = [[0], [1]] if selected == "left" else [[1], [0]]
            known = {"prompt", "answer1", "answer2"}
        else:
            items = data.get("items")
            if not isinstance(items, list) or len(items) < 2:
                raise RecordError("data.items", 'expected a list of at least 2 {"id", "body"}')
            ids = [need_object(i).get("id") for i in items]
            responses = [text(need_object(i).get("body"), f"data.items[{n}].body", ctx) for n, i in enumerate(items)]
            rank = (value.get("ranker") or {}).get("rank")
            if not isinstance(rank, list) or sorted(map(str, rank)) != sorted(map(str, ids)):
                raise RecordError("result.value.ranker.rank", "must list every item id exactly once")
            ranking = [[ids.index(i)] for i in rank]
            known = {"prompt", "items"}
        return [ItemSpec(prompt=prompt, responses=[ResponseSpec(text=t) for t in responses],
                         label=LabelSpec(ranking=ranking, source_name=ctx.label_source),
                         metadata=extras(data, known, ctx))]
