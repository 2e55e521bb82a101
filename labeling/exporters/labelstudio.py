"""Annotation-tool formats (``importers.labelstudio`` / ``importers.argilla`` read them back):

- ``label-studio``: one JSON array of Label Studio tasks. Two responses: ``data`` = ``{"prompt", "answer1",
  "answer2"}`` with a ``pairwise`` result ``{"selected": "left" | "right"}`` (answer1 is left); ties and
  both-bad have no pairwise value and are left out. More responses: ``data.items`` = ``[{"id", "body"}]``
  with a ``ranker`` result listing item ids best first (tie groups flattened in order). One task per item,
  one annotation per judgment (``completed_by`` the annotator's pseudonym or the imported source name,
  ``lead_time`` in seconds when timed).
- ``argilla``: Argilla-style records, ``{"fields": {"prompt", "response1", ...}, "metadata",
  "responses": {"preference": [{"value": [{"value": "response1", "rank": 1}, ...], "status": "submitted"}]}}``;
  tied responses share a rank; both-bad records are left out. One record per item, one response per
  judgment (``user_id`` as Label Studio's ``completed_by``).
Chat prompts are written as rendered transcripts (neither tool has a message-list field here)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .records import RecordExporter, prompt_text, register


def _who(judgment: dict, fmt: str) -> str | None:
    """Who gave a judgment, as the tool names users. A judgment imported from this format has its importer's
    ``<format>:<user>`` source name: the user goes back as it came, so a round trip names the same people."""
    who = judgment["annotator"] or judgment["source_name"]
    return who.removeprefix(f"{fmt}:") if who and who != fmt else None  # just the format's name: no one known


class PerItem(RecordExporter):
    """Rows of one item's judgments merged into one row (snapshots yield records in item order), so an
    overlap campaign's several answers travel together as the tools hold them: ``merge`` joins the rows."""

    def merge(self, rows: list[Any]) -> Any:
        raise NotImplementedError

    def _all_rows(self, records: Iterable[dict]) -> Iterator[Any]:
        group: list[Any] = []
        item = None
        for record in records:
            if group and record["item"]["id"] != item:
                self.rows_written += 1
                yield self.merge(group)
                group = []
            item = record["item"]["id"]
            group += self.rows(record)
        if group:
            self.rows_written += 1
            yield self.merge(group)


@register
class LabelStudio(PerItem):
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
        annotation: dict[str, Any] = {"result": [result]}
        if who := _who(j, self.name):
            annotation["completed_by"] = who
        if j["time_spent_ms"] is not None:
            annotation["lead_time"] = j["time_spent_ms"] / 1000
        yield {"data": data, "annotations": [annotation], "meta": meta}

    def merge(self, rows: list[dict]) -> dict:
        task = rows[0]
        task["annotations"] = [a for row in rows for a in row["annotations"]]
        task["meta"]["judgment_ids"] = [i for row in rows for i in row["meta"]["judgment_ids"]]
        return task


@register
class Argilla(PerItem):
    name = "argilla"
    help = "Argilla-style records: fields prompt / responseN, a ranking question named preference"

    def rows(self, record: dict) -> Iterator[dict]:
        j = record["judgment"]
        if j["both_bad"] or not j["ranking"]:
            return
        fields = {"prompt": prompt_text(record["prompt"])}
        fields.update({f"response{i + 1}": r["text"] for i, r in enumerate(record["responses"])})
        ranks = [{"value": f"response{i + 1}", "rank": at + 1} for at, group in enumerate(j["ranking"]) for i in group]
        response: dict[str, Any] = {"value": ranks, "status": "submitted"}
        if who := _who(j, self.name):
            response["user_id"] = who
        yield {"fields": fields, "metadata": record["prompt"]["metadata"], "responses": {"preference": [response]}}

    def merge(self, rows: list[dict]) -> dict:
        row = rows[0]
        row["responses"]["preference"] = [p for r in rows for p in r["responses"]["preference"]]
        return row
