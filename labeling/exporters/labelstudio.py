"""Annotation-tool formats (``importers.labelstudio`` / ``importers.argilla`` read them back):

- ``label-studio``: one JSON array of Label Studio tasks. Two responses: ``data`` = ``{"prompt", "answer1",
  "answer2"}`` with a ``pairwise`` result ``{"selected": "left" | "right"}`` (answer1 is left); ties and
  both-bad have no pairwise value and are left out. More responses: ``data.items`` = ``[{"id", "body"}]``
  with a ``ranker`` result listing item ids best first (tie groups flattened in order).
- ``argilla``: Argilla-style records, ``{"fields": {"prompt", "response1", ...}, "metadata",
  "responses": {"preference": [{"value": [{"value": "response1", "rank": 1}, ...], "status": "submitted"}]}}``;
  tied responses share a rank; both-bad records are left out.
Chat prompts are written as rendered transcripts (neither tool has a message-list field here)."""
from __future__ import annotations

from collections.abc import Iterator

from .records import RecordExporter, prompt_text, register


@register
class LabelStudio(RecordExporter):
    name = "label-studio"
    extension = "json"
    content_type = "application/json; charset=utf-8"
    container = "json-array"
    help = "Label Studio tasks with pairwise (2 responses) or ranker results"

    def rows(self, record: dict) -> Iterator[dict]:
        j, texts = record["judgment"], [r["text"] for r in record["responses"]]
        prompt = prompt_text(record["prompt"])
        meta = {"item_id": record["item"]["id"], "judgment_ids": record["lineage"]["judgment_ids"]}
        if len(texts) == 2:
            if j["winner"] is None:
                return
            value = {"selected": "left" if j["winner"] == 0 else "right"}
            result = {"from_name": "comparison", "to_name": "prompt", "type": "pairwise", "value": value}
            data = {"prompt": prompt, "answer1": texts[0], "answer2": texts[1]}
        else:
            if j["both_bad"] or not j["ranking"]:
                return
            data = {"prompt": prompt, "items": [{"id": f"r{i}", "body": t} for i, t in enumerate(texts)]}
            rank = [f"r{i}" for group in j["ranking"] for i in group]
            result = {"from_name": "rank", "to_name": "items", "type": "ranker", "value": {"ranker": {"rank": rank}}}
        yield {"data": data, "annotations": [{"result": [result]}], "meta": meta}


@register
class Argilla(RecordExporter):
    name = "argilla"
    help = "Argilla-style records: fields prompt / responseN, a ranking question named preference"

    def rows(self, record: dict) -> Iterator[dict]:
        j = record["judgment"]
        if j["both_bad"] or not j["ranking"]:
            return
        fields = {"prompt": prompt_text(record["prompt"])}
        fields.update({f"response{i + 1}": r["text"] for i, r in enumerate(record["responses"])})
        ranks = [{"value": f"response{i + 1}", "rank": at + 1} for at, group in enumerate(j["ranking"]) for i in group]
        yield {"fields": fields, "metadata": record["prompt"]["metadata"],
               "responses": {"preference": [{"value": ranks, "status": "submitted"}]}}
