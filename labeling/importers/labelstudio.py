"""``label-studio``: Label Studio tasks (a JSON array, or JSON lines) with a ``pairwise`` result
(``data.prompt`` / ``answer1`` / ``answer2``, ``selected`` left = answer1) or a ``ranker`` result over
``data.items`` (``[{"id", "body"}]``, ids best first). Every annotation of a task (a project with overlap has
several) is stored as its own known preference, by ``label_source:completed_by`` (default label source
``"label-studio"``; just the label source when ``completed_by`` is missing), with its ``lead_time``. Cancelled annotations
(``was_cancelled``) are skipped and counted in a note, as are exact repeats of one annotator's answer; a task
whose annotations are all cancelled is imported without a label. ``data`` keys other than the prompt and the
responses are kept in the item's metadata."""
from __future__ import annotations

from typing import Any

from ..services.items import ItemSpec, LabelSpec, PromptSpec, ResponseSpec
from .base import Context, Format, RecordError, distinct_labels, extras, need_object, register, text


def _result(annotation: Any, at: str, kind: str) -> dict:
    results = need_object(annotation).get("result")
    found = [r for r in results or [] if isinstance(r, dict) and r.get("type") in ("pairwise", "ranker")]
    if len(found) != 1 or found[0]["type"] != kind:
        raise RecordError(f"{at}.result", f"expected exactly one {kind} result")
    value = found[0].get("value")
    return value if isinstance(value, dict) else {}


def _ranking(value: dict, at: str, ids: list | None) -> list[list[int]]:
    """Tie groups of response indexes from one result's value (``ids`` None: a pairwise result)."""
    if ids is None:
        selected = value.get("selected")
        if selected not in ("left", "right"):
            raise RecordError(f"{at}.result.value.selected", f"expected left or right (got {selected!r})")
        return [[0], [1]] if selected == "left" else [[1], [0]]
    rank = (value.get("ranker") or {}).get("rank") if isinstance(value.get("ranker"), dict) else None
    if not isinstance(rank, list) or sorted(map(str, rank)) != sorted(map(str, ids)):
        raise RecordError(f"{at}.result.value.ranker.rank", "must list every item id exactly once")
    by_id = {str(i): n for n, i in enumerate(ids)}
    return [[by_id[str(i)]] for i in rank]


def _lead_time(value: Any, at: str) -> int | None:
    """Label Studio's ``lead_time`` (seconds) as milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**31 / 1000:
        raise RecordError(at, "expected a non-negative number of seconds")
    return round(value * 1000)


def _labels(task: dict, ids: list | None, ctx: Context) -> list[LabelSpec]:
    annotations = task.get("annotations")
    if not isinstance(annotations, list) or not annotations:
        raise RecordError("annotations", "expected a non-empty list of annotations")
    kind = "pairwise" if ids is None else "ranker"
    labels = []
    for n, annotation in enumerate(annotations):
        at = f"annotations[{n}]"
        if not isinstance(annotation, dict):
            raise RecordError(at, "expected an annotation object")
        if annotation.get("was_cancelled") is True:
            ctx.note("cancelled Label Studio annotation(s) skipped")
            continue
        ranking = _ranking(_result(annotation, at, kind), at, ids)
        labels.append(LabelSpec(ranking=ranking, source_name=ctx.annotator_source(annotation.get("completed_by")),
                                time_spent_ms=_lead_time(annotation.get("lead_time"), f"{at}.lead_time")))
    if not labels:
        ctx.note("task(s) with every annotation cancelled imported without a label")
    return distinct_labels(labels, ctx)


@register
class LabelStudio(Format):
    name = "label-studio"
    detect_order = 15
    help = "Label Studio tasks with pairwise or ranker results, one judgment per annotation"

    @classmethod
    def detect(cls, record: Any) -> bool:
        return isinstance(record, dict) and isinstance(record.get("data"), dict) and "annotations" in record

    def parse(self, record: Any, ctx: Context) -> list[ItemSpec]:
        task = need_object(record)
        data = need_object(task.get("data"))
        prompt = PromptSpec(text=text(data.get("prompt"), "data.prompt", ctx))
        if "items" in data:  # a ranker task; otherwise a pairwise one
            items = data.get("items")
            if not isinstance(items, list) or len(items) < 2:
                raise RecordError("data.items", 'expected a list of at least 2 {"id", "body"}')
            ids = [need_object(i).get("id") for i in items]
            responses = [text(need_object(i).get("body"), f"data.items[{n}].body", ctx) for n, i in enumerate(items)]
            known = {"prompt", "items"}
        else:
            ids = None
            responses = [text(data.get(k), f"data.{k}", ctx) for k in ("answer1", "answer2")]
            known = {"prompt", "answer1", "answer2"}
        return [ItemSpec(prompt=prompt, responses=[ResponseSpec(text=t) for t in responses],
                         labels=_labels(task, ids, ctx), metadata=extras(data, known, ctx))]
