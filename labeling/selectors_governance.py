"""Reads for data governance: canonical judgment records, snapshots and their records, export jobs, the audit
log. The canonical record is the platform's lossless shape of one judgment (or, aggregated, of one item):

``{"schema", "campaign_id", "round": {"id", "number"}, "item": {"id", "kind", "metadata"},
"prompt": {"id", "kind", "text", "messages", "metadata", "external_id", "content_hash"},
"responses": [{"id", "text", "model_name", "generation_params", "metadata", "content_hash"}]`` (the item's
canonical order), ``"judgment": {"id", "kind", "source", "source_name", "annotator", "winner", "tie",
"both_bad", "strength", "ranking", "rationale", "time_spent_ms", "shown_order", "created_at"}`` (``winner``,
``ranking`` and ``shown_order`` as indexes into ``responses``; ``annotator`` a stable pseudonym, never the
user name), ``"split"`` and ``"lineage": {"judgment_ids", "response_ids", "assignment_id"}``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache
from itertools import islice

from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.db.models import OuterRef, QuerySet, Subquery

from .errors import NotFound
from .models import (
    AuditEvent,
    Campaign,
    ExportJob,
    ItemResponse,
    Judgment,
    PiiPolicy,
    Snapshot,
    SnapshotMember,
)

SCHEMA = "loopwise.judgment/1"
FILTER_KEYS = {"sources": list, "kinds": list, "annotator_ids": list, "exclude_ties": bool,
               "exclude_both_bad": bool, "min_strength": int}


@lru_cache(maxsize=4096)  # a few annotators, a million judgments: one HMAC each, not one per row
def annotator_pseudonym(key: str, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    return "ann-" + hmac.new(key.encode(), f"annotator\x00{user_id}".encode(), hashlib.sha256).hexdigest()[:10]


# What a canonical record reads, as plain values: model instances cost several times more per row.
ROW_FIELDS = (
    "id", "campaign_id", "round_id", "round__number", "item_id", "item__kind", "item__metadata", "item__prompt_id",
    "item__prompt__kind", "item__prompt__text", "item__prompt__messages", "item__prompt__metadata",
    "item__prompt__external_id", "item__prompt__content_hash", "item__prompt__split", "kind", "source",
    "source_name", "annotator_id", "winner_id", "tie", "both_bad", "strength", "ranking", "rationale",
    "time_spent_ms", "shown_order", "created_at", "assignment_id",
)
RESPONSE_FIELDS = ("item_id", "response_id", "response__text", "response__model_name", "response__generation_params",
                   "response__metadata", "response__content_hash")
# The JSONField columns among them: the only values that need converting (Django's loader hands jsonb over
# as text; its JSONField.from_db_value is json.loads, done here directly).
JSON_FIELDS = frozenset({"item__metadata", "item__prompt__messages", "item__prompt__metadata", "ranking",
                         "shown_order", "response__generation_params", "response__metadata"})
CHUNK = 2000
_JSON = json.JSONDecoder()


def _plain_chunks(qs: QuerySet, names: tuple[str, ...], *, server_side: bool = True,
                  size: int = CHUNK) -> Iterator[list[dict]]:
    """``qs.values(*names)`` a chunk at a time (from a server-side cursor unless told otherwise), without
    Django's per-row converter machinery (it cost more than building the records): the SQL is Django's own,
    and JSON columns are decoded here, so the dicts are the ones ``values()`` gives."""
    connection = connections[qs.db]
    if connection.vendor != "postgresql":  # elsewhere (SQLite demo) dates need Django's converters
        rows = qs.values(*names).iterator(chunk_size=size)
        while chunk := list(islice(rows, size)):
            yield chunk
        return
    sql, params = qs.values_list(*names).query.get_compiler(using=qs.db).as_sql()
    decode = [name for name in names if name in JSON_FIELDS]
    loads = _JSON.raw_decode  # jsonb text never starts with whitespace, which is all json.loads adds
    with connection.chunked_cursor() if server_side else connection.cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(size):
            rows = [dict(zip(names, values, strict=True)) for values in batch]
            for row in rows:
                for name in decode:
                    if (value := row[name]) is not None:
                        row[name] = loads(value)[0]
            yield rows


def judgment_rows(qs: QuerySet[Judgment], *extra: str, chunk: int = CHUNK) -> Iterator[tuple[dict, list[dict]]]:
    """``(judgment row, its item's response rows in canonical order)`` for ``qs`` in its order, streamed from
    a server-side cursor ``chunk`` rows at a time: one query for the chunk's responses, memory flat."""
    for rows in _plain_chunks(qs, (*ROW_FIELDS, *extra), size=chunk):
        links = ItemResponse.objects.filter(item_id__in={r["item_id"] for r in rows}).order_by("item_id", "position")
        by_item: dict[int, list[dict]] = {}
        for response_rows in _plain_chunks(links, RESPONSE_FIELDS, server_side=False):
            for link in response_rows:
                by_item.setdefault(link["item_id"], []).append(link)
        for row in rows:
            yield row, by_item.get(row["item_id"], [])


def judgments_for_snapshot(*, campaign: Campaign, round_ids: list[int] | None, filters: dict) -> QuerySet[Judgment]:
    """The judgments a snapshot with these (already validated) inputs holds, in item then id order."""
    qs = Judgment.objects.filter(campaign=campaign)
    if round_ids:
        qs = qs.filter(round_id__in=round_ids)
    if filters.get("sources"):
        qs = qs.filter(source__in=filters["sources"])
    if filters.get("kinds"):
        qs = qs.filter(kind__in=filters["kinds"])
    if filters.get("annotator_ids"):
        qs = qs.filter(annotator_id__in=filters["annotator_ids"])
    if filters.get("exclude_ties"):
        qs = qs.exclude(tie=True)
    if filters.get("exclude_both_bad"):
        qs = qs.exclude(both_bad=True)
    if filters.get("min_strength"):
        qs = qs.filter(strength__gte=filters["min_strength"])
    return qs.order_by("item_id", "id")


def _indexes(ids: Iterable[int], index: dict[int, int]) -> list[int]:
    return [index[i] for i in ids if i in index]


def canonical_record(row: dict, responses: list[dict], *, split: str, key: str) -> dict:
    """The canonical record of one judgment row (``judgment_rows``)."""
    index = {r["response_id"]: i for i, r in enumerate(responses)}
    human = row["source"] == Judgment.Source.HUMAN
    return {
        "schema": SCHEMA,
        "campaign_id": row["campaign_id"],
        "round": {"id": row["round_id"], "number": row["round__number"]},
        "item": {"id": row["item_id"], "kind": row["item__kind"], "metadata": row["item__metadata"]},
        "prompt": {"id": row["item__prompt_id"], "kind": row["item__prompt__kind"], "text": row["item__prompt__text"],
                   "messages": row["item__prompt__messages"], "metadata": row["item__prompt__metadata"],
                   "external_id": row["item__prompt__external_id"], "content_hash": row["item__prompt__content_hash"]},
        "responses": [{"id": r["response_id"], "text": r["response__text"], "model_name": r["response__model_name"],
                       "generation_params": r["response__generation_params"], "metadata": r["response__metadata"],
                       "content_hash": r["response__content_hash"]} for r in responses],
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
        "lineage": {"judgment_ids": [row["id"]], "response_ids": [r["response_id"] for r in responses],
                    "assignment_id": row["assignment_id"]},
    }


def _outcome(record: dict) -> tuple:
    j = record["judgment"]
    if j["both_bad"]:
        return ("both_bad",)
    return tuple(tuple(sorted(g)) for g in j["ranking"])


def majority_record(records: list[dict]) -> dict:
    """One record for an item from its judgments' records: the plurality outcome (ranking groups, tie or
    both-bad); no strict plurality is a tie of all responses. Strength: the median among the majority."""
    votes = Counter(_outcome(r) for r in records)
    (best, n), *rest = votes.most_common()
    first = records[0]
    n_responses = len(first["responses"])
    if rest and rest[0][1] == n:
        best = (tuple(range(n_responses)),)
    agreeing = [r for r in records if _outcome(r) == best]
    strengths = sorted(r["judgment"]["strength"] for r in agreeing if r["judgment"]["strength"] is not None)
    both_bad = best == ("both_bad",)
    ranking = [] if both_bad else [list(g) for g in best]
    winner = ranking[0][0] if len(ranking) == 2 and n_responses == 2 else None
    out = {**first, "judgment": {
        "id": None, "kind": first["judgment"]["kind"], "source": "aggregated", "source_name": "majority",
        "annotator": None, "winner": winner, "tie": not both_bad and len(ranking) == 1, "both_bad": both_bad,
        "strength": strengths[len(strengths) // 2] if strengths and winner is not None else None,
        "ranking": ranking, "rationale": "", "time_spent_ms": None, "shown_order": [], "created_at": None,
        "votes": len(records), "agreement": round(len(agreeing) / len(records), 4),
    }}
    out["lineage"] = {**first["lineage"], "judgment_ids": [r["judgment"]["id"] for r in records], "assignment_id": None}
    return out


def aggregate(records: Iterable[dict], aggregation: str) -> Iterator[dict]:
    """Records as they are (``none``) or one per item (``majority``); input must come in item order."""
    if aggregation == "none":
        yield from records
        return
    group: list[dict] = []
    for record in records:
        if group and record["item"]["id"] != group[0]["item"]["id"]:
            yield majority_record(group)
            group = []
        group.append(record)
    if group:
        yield majority_record(group)


# --- snapshots -----------------------------------------------------------------------------------------


def snapshot_list(*, campaign: Campaign) -> QuerySet[Snapshot]:
    return Snapshot.objects.filter(campaign=campaign).select_related("created_by")


def snapshot_get(*, campaign: Campaign, snapshot_id: int) -> Snapshot:
    found = snapshot_list(campaign=campaign).filter(pk=snapshot_id).first()
    if found is None:
        raise NotFound(f"snapshot {snapshot_id} not found in campaign {campaign.pk}")
    return found


def snapshot_ids_with_deleted_data(*, snapshot_ids: Iterable[int] | None = None) -> set[int]:
    """Snapshots (of ``snapshot_ids``, or all) holding data deleted since: runs trained on them are marked."""
    qs = Snapshot.objects.filter(data_deleted_at__isnull=False)
    if snapshot_ids is not None:
        qs = qs.filter(pk__in=list(snapshot_ids))
    return set(qs.values_list("pk", flat=True))


def snapshot_raw_records(*, snapshot: Snapshot, key: str, split: str | None = None) -> Iterator[dict]:
    """The snapshot's judgments that still exist, as canonical records before aggregation and PII policy."""
    members = SnapshotMember.objects.filter(snapshot=snapshot)
    if split:
        members = members.filter(split=split)
    # The split comes with each row (a subquery on the member's unique index), not from a dict of every id.
    in_split = members.filter(judgment_id=OuterRef("pk")).values("split")[:1]
    qs = Judgment.objects.filter(pk__in=members.values("judgment_id")).annotate(snapshot_split=Subquery(in_split))
    for row, responses in judgment_rows(qs.order_by("item_id", "id"), "snapshot_split"):
        yield canonical_record(row, responses, split=row["snapshot_split"], key=key)


def snapshot_records(*, snapshot: Snapshot, split: str | None = None, pii_report=None) -> Iterator[dict]:
    """The snapshot as canonical records (aggregated as its manifest says, with its PII policy applied: a
    record the policy rejects is left out and counted in ``pii_report`` when one is given)."""
    from .pii import PiiReport, RecordRejected, apply_strings
    from .pii.campaign import policy_for

    manifest = snapshot.manifest
    policy = policy_for(campaign=snapshot.campaign, override=manifest["pii_policy"])
    report = pii_report if pii_report is not None else PiiReport()
    records = aggregate(snapshot_raw_records(snapshot=snapshot, key=policy.key, split=split), manifest["aggregation"])
    if not policy.active:  # allow everything: records pass untouched, no per-record PII work
        yield from records
        return
    for record in records:
        where = f"judgment {record['judgment']['id'] or record['lineage']['judgment_ids']}"
        try:
            record["prompt"] = apply_strings(record["prompt"], policy, where=f"{where} prompt", report=report)
            record["responses"] = apply_strings(record["responses"], policy, where=f"{where} responses", report=report)
            record["judgment"]["rationale"] = apply_strings(
                record["judgment"]["rationale"], policy, where=f"{where} rationale", report=report)
        except RecordRejected:
            report.records_rejected += 1
            continue
        yield record


# --- export jobs and the audit log ----------------------------------------------------------------------


def export_job_list(*, campaign: Campaign) -> QuerySet[ExportJob]:
    return ExportJob.objects.filter(campaign=campaign).select_related("snapshot", "created_by")


def export_job_get(*, campaign: Campaign, job_id: int) -> ExportJob:
    found = export_job_list(campaign=campaign).filter(pk=job_id).first()
    if found is None:
        raise NotFound(f"export {job_id} not found in campaign {campaign.pk}")
    return found


def audit_list(*, user: AbstractBaseUser, campaign_ids: Iterable[int] | None, action: str | None = None,
               actor_id: int | None = None, since=None, until=None) -> QuerySet[AuditEvent]:
    """Audit events; ``campaign_ids`` None means every event (site staff only, checked by the caller)."""
    qs = AuditEvent.objects.all()
    if campaign_ids is not None:
        qs = qs.filter(campaign_id__in=list(campaign_ids))
    if action:
        qs = qs.filter(action=action)
    if actor_id:
        qs = qs.filter(actor_id=actor_id)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    return qs.order_by("-created_at", "-id")


# --- the bias report -------------------------------------------------------------------------------------

FACETS = ("language", "topic", "source")


def _rate(hits: int, total: int) -> dict:
    return {"rate": round(hits / total, 4) if total else None, "n": total}


def _label(j: dict) -> str:
    if j["both_bad"]:
        return "both_bad"
    if j["tie"]:
        return "tie"
    if j["winner"] is None:
        return "ranking"
    return "A" if j["winner"] == 0 else "B"


class _Tally:
    def __init__(self):
        self.labels, self.left, self.decisive, self.longer, self.length_decisive = Counter(), 0, 0, 0, 0
        # Machine integers, not lists of int objects: at a million judgments (five tallies each) the lists
        # alone held over 200 MB.
        self.strengths, self.times = array("q"), array("q")

    def add(self, record: dict) -> None:
        j = record["judgment"]
        self.labels[_label(j)] += 1
        if j["strength"] is not None:
            self.strengths.append(j["strength"])
        if j["time_spent_ms"] is not None:
            self.times.append(j["time_spent_ms"])
        if j["winner"] is None or len(record["responses"]) != 2:
            return
        if len(j["shown_order"]) == 2:
            self.decisive += 1
            self.left += j["shown_order"][0] == j["winner"]
        lengths = [len(r["text"]) for r in record["responses"]]
        if lengths[0] != lengths[1]:
            self.length_decisive += 1
            self.longer += lengths[j["winner"]] == max(lengths)

    def summary(self) -> dict:
        total = sum(self.labels.values())
        return {
            "judgments": total,
            "labels": {k: {"n": n, "share": round(n / total, 4)} for k, n in sorted(self.labels.items())},
            "left_wins": _rate(self.left, self.decisive),
            "longer_wins": _rate(self.longer, self.length_decisive),
            "mean_strength": round(sum(self.strengths) / len(self.strengths), 3) if self.strengths else None,
            "median_time_ms": sorted(self.times)[len(self.times) // 2] if self.times else None,
        }


def _tally(tallies: dict, key: str) -> _Tally:
    # Not setdefault(key, _Tally()): that built (and threw away) a tally per record and facet.
    if (found := tallies.get(key)) is None:
        found = tallies[key] = _Tally()
    return found


class BiasReport:
    """Label balance (A / B / tie / both-bad, A being the item's first response), position bias (how often
    the response shown on the left wins, overall and per annotator; 0.5 is unbiased), length bias (how often
    the longer response wins), per-annotator distributions, and label balance per value of each prompt
    metadata facet. Fed one record at a time; memory bounded by the number of annotators and facet values."""

    def __init__(self, facets: Iterable[str] = FACETS):
        self.facets = tuple(facets)
        self.overall, self.per_annotator = _Tally(), {}
        self.per_facet: dict[str, dict[str, _Tally]] = {f: {} for f in self.facets}

    def add(self, record: dict) -> None:
        self.overall.add(record)
        who = record["judgment"]["annotator"] or record["judgment"]["source_name"] or "unknown"
        _tally(self.per_annotator, who).add(record)
        metadata = record["prompt"]["metadata"] or {}
        for facet in self.facets:
            value = metadata.get(facet)
            _tally(self.per_facet[facet], "(none)" if value is None else str(value)[:100]).add(record)

    def result(self) -> dict:
        summary = self.overall.summary()
        annotators = {k: t.summary() for k, t in sorted(self.per_annotator.items())}
        return {
            "judgments": summary["judgments"],
            "label_balance": summary["labels"],
            "position_bias": {"left_wins": summary["left_wins"],
                              "per_annotator": {k: a["left_wins"] for k, a in annotators.items()}},
            "length_bias": {"longer_wins": summary["longer_wins"]},
            "annotators": annotators,
            "facets": {f: {v: {"judgments": t.summary()["judgments"], "labels": t.summary()["labels"]}
                           for v, t in sorted(values.items())} for f, values in self.per_facet.items()},
        }


def bias_report(*, records: Iterable[dict], facets: Iterable[str] = FACETS) -> dict:
    report = BiasReport(facets)
    for record in records:
        report.add(record)
    return report.result()


def campaign_bias(*, campaign: Campaign, facets: Iterable[str] = FACETS) -> dict:
    """The bias report over a campaign's judgments as they are now. Annotator pseudonyms match the
    snapshots' when the campaign has a PII policy row (its key); until then they are keyed with ""."""
    key = PiiPolicy.objects.filter(campaign=campaign).values_list("key", flat=True).first() or ""
    qs = judgments_for_snapshot(campaign=campaign, round_ids=None, filters={})
    records = (canonical_record(row, responses, split="", key=key) for row, responses in judgment_rows(qs))
    return bias_report(records=records, facets=facets)
