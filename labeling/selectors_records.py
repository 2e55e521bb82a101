"""Judgments read as plain rows, and the canonical record of one judgment: what snapshots hash, exports write
and the bias report counts. (``selectors_governance`` documents the record's shape.)

Reading. Judgments in item order, their items (with prompts) and the items' responses come as three
streams from server-side cursors, merged on the item id: every judgment of an item shares one
``ItemContext``. With several judgments per item (the campaign's overlap) the texts cross the wire, are
decoded and are turned into record parts once per item, not once per judgment. (Fetching each chunk's items
by id instead cost more than it saved: PostgreSQL answered every such query with a scan of the prompts.)

Sharing. Records of one item share their ``item``, ``prompt`` and ``responses`` values (and the lineage's
response id list): treat them as read-only, and replace a part rather than change it (the PII policy does
so)."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from itertools import islice

import orjson
from django.db import connections
from django.db.models import QuerySet
from psycopg.types.datetime import TimestamptzLoader

from .models import ComparisonItem, ItemResponse, Judgment

SCHEMA = "loopwise.judgment/1"
# Rows per fetch from each stream: at 500 a million-judgment export ran as fast as at 2,000, with 30 MB less
# per process (three streams' batches, and their libpq results, in memory at once).
CHUNK = 500


@lru_cache(maxsize=4096)  # a few annotators, a million judgments: one HMAC each, not one per row
def annotator_pseudonym(key: str, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    return "ann-" + hmac.new(key.encode(), f"annotator\x00{user_id}".encode(), hashlib.sha256).hexdigest()[:10]


# What a record reads of a judgment, its item (with the prompt) and its responses, as plain values: model
# instances cost several times more per row.
ROW_FIELDS = (
    "id", "campaign_id", "round_id", "round__number", "item_id", "kind", "source", "source_name", "annotator_id",
    "winner_id", "tie", "both_bad", "strength", "ranking", "rationale", "time_spent_ms", "shown_order",
    "created_at", "assignment_id",
)
ITEM_FIELDS = ("id", "kind", "metadata", "prompt_id", "prompt__kind", "prompt__text", "prompt__messages",
               "prompt__metadata", "prompt__external_id", "prompt__content_hash", "prompt__split")
RESPONSE_FIELDS = ("item_id", "response_id", "response__text", "response__model_name", "response__generation_params",
                   "response__metadata", "response__content_hash")
# The JSONField columns among them: the only values that need converting (Django's loader hands jsonb over
# as text; its JSONField.from_db_value is json.loads, done here directly). The judgment's own lists hold
# response ids, which orjson reads as json.loads does; the others are free-form (``free_json``).
OWN_JSON = frozenset({"ranking", "shown_order"})
JSON_FIELDS = OWN_JSON | {"metadata", "prompt__messages", "prompt__metadata", "response__generation_params",
                          "response__metadata"}

_JSON = json.JSONDecoder()
# A run of 19 digits: an integer that may not fit in 64 bits (jsonb writes numbers in plain notation, so a
# huge or tiny number is a long run of digits too).
_LONG_DIGITS = re.compile(r"[0-9]{19}", re.ASCII)


def free_json(text: str):
    """``json.loads(text)`` of free-form jsonb text, by orjson where that gives the same value: orjson
    reads an integer beyond 64 bits as a float, so text with a long run of digits goes to the standard
    library, as does anything orjson refuses."""
    if len(text) < 19 or _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return _JSON.raw_decode(text)[0]  # jsonb text never starts with whitespace, which is all json.loads adds


def plain_chunks(qs: QuerySet, names: tuple[str, ...], *, size: int = CHUNK) -> Iterator[list[dict]]:
    """``qs.values(*names)`` a chunk at a time from a server-side cursor, without
    Django's per-row converter machinery (it cost more than building the records): the SQL is Django's own,
    and JSON columns are decoded here, so the dicts are the ones ``values()`` gives."""
    connection = connections[qs.db]
    if connection.vendor != "postgresql":  # elsewhere (SQLite demo) dates need Django's converters
        rows = qs.values(*names).iterator(chunk_size=size)
        while chunk := list(islice(rows, size)):
            yield chunk
        return
    sql, params = qs.values_list(*names).query.get_compiler(using=qs.db).as_sql()
    decode = [(name, orjson.loads if name in OWN_JSON else free_json) for name in names if name in JSON_FIELDS]
    with connection.chunked_cursor() as cursor:
        # psycopg's own timestamptz loader, which it runs in C, rather than Django's Python subclass of it
        # (which only sets tzinfo to the same UTC): a tenth of a read's time.
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(size):
            rows = [dict(zip(names, values, strict=True)) for values in batch]
            for row in rows:
                for name, loads in decode:
                    if (value := row[name]) is not None:
                        row[name] = loads(value)
            yield rows


class ItemContext:
    """One item as its records show it: the ``item``, ``prompt`` and ``responses`` record parts (responses
    in the item's canonical order), ``index`` (response id -> position) and ``response_ids``; ``prompt_split``
    is the split fixed at import ("" if none)."""

    __slots__ = ("item_id", "item", "prompt", "prompt_split", "responses", "index", "response_ids")

    def __init__(self, row: dict, links: list[dict]):
        self.item_id = row["id"]
        self.item = {"id": row["id"], "kind": row["kind"], "metadata": row["metadata"]}
        self.prompt = {"id": row["prompt_id"], "kind": row["prompt__kind"], "text": row["prompt__text"],
                       "messages": row["prompt__messages"], "metadata": row["prompt__metadata"],
                       "external_id": row["prompt__external_id"], "content_hash": row["prompt__content_hash"]}
        self.prompt_split = row["prompt__split"]
        self.responses = [{"id": r["response_id"], "text": r["response__text"], "model_name": r["response__model_name"],
                           "generation_params": r["response__generation_params"], "metadata": r["response__metadata"],
                           "content_hash": r["response__content_hash"]} for r in links]
        self.response_ids = [r["response_id"] for r in links]
        self.index = {rid: i for i, rid in enumerate(self.response_ids)}


def _rows(chunks: Iterator[list[dict]]) -> Iterator[dict]:
    for chunk in chunks:
        yield from chunk


def _contexts(item_ids: QuerySet, size: int) -> Iterator[ItemContext]:
    """The contexts of the items ``item_ids`` (a ``values("item_id")`` queryset) names, in item id order: one
    query for the items (with their prompts), one for their responses, both streamed and merged here."""
    items = ComparisonItem.objects.filter(pk__in=item_ids).order_by("pk")
    links = _rows(plain_chunks(ItemResponse.objects.filter(item_id__in=item_ids).order_by("item_id", "position"),
                               RESPONSE_FIELDS, size=size))
    link = next(links, None)
    for item in _rows(plain_chunks(items, ITEM_FIELDS, size=size)):
        own = []
        while link is not None and link["item_id"] <= item["id"]:
            if link["item_id"] == item["id"]:
                own.append(link)
            link = next(links, None)
        yield ItemContext(item, own)


def judgment_rows(qs: QuerySet[Judgment], *extra: str, chunk: int = CHUNK,
                  item_ids: QuerySet | None = None) -> Iterator[tuple[dict, ItemContext]]:
    """``(judgment row, its item's context)`` for ``qs``, which must be ordered by item id first (the
    contexts stream beside it in that order); ``extra`` names more values (annotations) to read with each
    row; ``item_ids`` bounds the items read (``qs.values("item_id")`` by default; give one when ``qs``
    cannot be a subquery). Three queries, each read from a server-side cursor ``chunk`` rows at a time:
    memory is flat.

    The three are read at slightly different moments, the items and responses first: a judgment on an item
    created after the items were read is left out (as if all were read a moment earlier), and an item whose
    judgments were deleted in between is passed over."""
    order = qs.query.order_by
    if not order or order[0] not in ("item_id", "item", "item__id"):
        raise ValueError(f"judgment_rows needs judgments ordered by item id first (got {list(order)})")
    contexts = _contexts(qs.order_by().values("item_id") if item_ids is None else item_ids, chunk)
    context = next(contexts, None)
    for row in _rows(plain_chunks(qs, (*ROW_FIELDS, *extra), size=chunk)):
        while context is not None and context.item_id < row["item_id"]:
            context = next(contexts, None)
        if context is not None and context.item_id == row["item_id"]:
            yield row, context


def _indexes(ids: Iterable[int], index: dict[int, int]) -> list[int]:
    return [index[i] for i in ids if i in index]


def canonical_record(row: dict, context: ItemContext, *, split: str, key: str) -> dict:
    """The canonical record of one judgment row (``judgment_rows``)."""
    index = context.index
    human = row["source"] == Judgment.Source.HUMAN
    return {
        "schema": SCHEMA,
        "campaign_id": row["campaign_id"],
        "round": {"id": row["round_id"], "number": row["round__number"]},
        "item": context.item,
        "prompt": context.prompt,
        "responses": context.responses,
        "judgment": {
            "id": row["id"], "kind": row["kind"], "source": row["source"], "source_name": row["source_name"],
            # An imported human judgment has no user here: its pseudonym came in as source_name.
            "annotator": annotator_pseudonym(key, row["annotator_id"]) or (
                row["source_name"] or None if human else None),
            "winner": index.get(row["winner_id"]), "tie": row["tie"], "both_bad": row["both_bad"],
            "strength": row["strength"], "ranking": [_indexes(g, index) for g in row["ranking"]],
            "rationale": row["rationale"], "time_spent_ms": row["time_spent_ms"],
            "shown_order": _indexes(row["shown_order"], index), "created_at": row["created_at"].isoformat(),
        },
        "split": split,
        "lineage": {"judgment_ids": [row["id"]], "response_ids": context.response_ids,
                    "assignment_id": row["assignment_id"]},
    }
