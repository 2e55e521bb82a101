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

from array import array
from collections import Counter
from collections.abc import Iterable, Iterator

from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.db.models import QuerySet

from .errors import NotFound
from .models import (
    AuditEvent,
    Campaign,
    ExportJob,
    Judgment,
    PiiPolicy,
    Snapshot,
    SnapshotMember,
)
from .selectors_records import canonical_record, judgment_rows

FILTER_KEYS = {"sources": list, "kinds": list, "annotator_ids": list, "exclude_ties": bool,
               "exclude_both_bad": bool, "min_strength": int}


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


def _on_items(qs: QuerySet, items: tuple[int | None, int | None]) -> QuerySet:
    """``qs`` (judgments or snapshot members) on items with ids in ``[low, high)`` of ``items``."""
    low, high = items
    if low is not None:
        qs = qs.filter(item_id__gte=low)
    if high is not None:
        qs = qs.filter(item_id__lt=high)
    return qs


def _snapshot_items(snapshot: Snapshot, split: str | None, items: tuple[int | None, int | None]) -> QuerySet:
    """The ids of the snapshot's items (of ``split``, in the ``items`` range) as a ``values("item_id")``
    queryset of its members: an index probe per item, where going through the judgments cost a third of an
    export's database time. It may name an item whose judgments were all deleted since: the judgments'
    stream has none of its rows, so nothing of it is written."""
    members = SnapshotMember.objects.filter(snapshot=snapshot, **({"split": split} if split else {}))
    return _on_items(members, items).values("item_id")


def snapshot_raw_records(*, snapshot: Snapshot, key: str, split: str | None = None,
                         items: tuple[int | None, int | None] = (None, None)) -> Iterator[dict]:
    """The snapshot's judgments that still exist (on items with ids in ``[low, high)`` of ``items``; None
    leaves that end open), as canonical records before aggregation and PII policy."""
    member = SnapshotMember._meta.db_table
    where = [f"{member}.judgment_id = {Judgment._meta.db_table}.id", f"{member}.snapshot_id = %s"]
    params: list = [snapshot.pk]
    if split:
        where.append(f"{member}.split = %s")
        params.append(split)
    # A join to the members (which have no foreign key to join through): the split comes with each row. A
    # subquery per row cost more than all the rest of the read.
    qs = _on_items(Judgment.objects.all(), items).extra(
        select={"snapshot_split": f"{member}.split"}, tables=[member], where=where, params=params)
    item_ids = _snapshot_items(snapshot, split, items)
    for row, context in judgment_rows(qs.order_by("item_id", "id"), "snapshot_split", item_ids=item_ids):
        yield canonical_record(row, context, split=row["snapshot_split"], key=key)


def snapshot_item_bounds(*, snapshot: Snapshot, split: str | None, parts: int) -> list[int]:
    """Item ids that cut the snapshot's judgments (of ``split``) into about ``parts`` parts of equal size,
    each cut at an item's first judgment: ``[low, high)`` ranges between them keep an item's judgments
    together. Fewer cuts when there are fewer items. PostgreSQL only, as are exports in parts."""
    if parts < 2:
        return []
    item_ids = _snapshot_items(snapshot, split, (None, None))
    sql, params = item_ids.query.sql_with_params()
    fractions = [i / parts for i in range(1, parts)]
    with connections[item_ids.db].cursor() as cursor:
        cursor.execute(f"SELECT percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY item_id) FROM ({sql}) AS j",
                       [fractions, *params])
        cuts = cursor.fetchone()[0] or []
    return sorted({cut for cut in cuts if cut is not None})


def snapshot_records(*, snapshot: Snapshot, split: str | None = None, pii_report=None,
                     items: tuple[int | None, int | None] = (None, None)) -> Iterator[dict]:
    """The snapshot as canonical records (aggregated as its manifest says, with its PII policy applied: a
    record the policy rejects is left out and counted in ``pii_report`` when one is given); ``items`` as
    in ``snapshot_raw_records``."""
    from .pii import PiiReport, RecordRejected, apply_strings
    from .pii.campaign import policy_for

    manifest = snapshot.manifest
    policy = policy_for(campaign=snapshot.campaign, override=manifest["pii_policy"])
    report = pii_report if pii_report is not None else PiiReport()
    records = aggregate(snapshot_raw_records(snapshot=snapshot, key=policy.key, split=split, items=items),
                        manifest["aggregation"])
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

    def add(self, label: str, strength: int | None, time_ms: int | None, left: bool | None, longer: bool | None) -> None:
        """One judgment's facts (``BiasReport.add`` works them out once for all the tallies it feeds):
        ``left`` whether the response shown on the left won, ``longer`` whether the longer one did (None:
        not decided, or no such comparison)."""
        self.labels[label] += 1
        if strength is not None:
            self.strengths.append(strength)
        if time_ms is not None:
            self.times.append(time_ms)
        if left is not None:
            self.decisive += 1
            self.left += left
        if longer is not None:
            self.length_decisive += 1
            self.longer += longer

    def summary(self) -> dict:
        total = sum(self.labels.values())
        return {
            "judgments": total,
            "labels": _shares(self.labels),
            "left_wins": _rate(self.left, self.decisive),
            "longer_wins": _rate(self.longer, self.length_decisive),
            "mean_strength": round(sum(self.strengths) / len(self.strengths), 3) if self.strengths else None,
            "median_time_ms": sorted(self.times)[len(self.times) // 2] if self.times else None,
        }


def _shares(labels: Counter) -> dict:
    total = sum(labels.values())
    return {k: {"n": n, "share": round(n / total, 4)} for k, n in sorted(labels.items())}


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
        # Facet values report label balance only: a Counter of labels each, not a whole tally.
        self.per_facet: dict[str, dict[str, Counter]] = {f: {} for f in self.facets}
        self._metadata: object = object()  # the last record's prompt metadata, and its facets' counters
        self._counters: list[Counter] = []

    def add(self, record: dict) -> None:
        j = record["judgment"]
        left = longer = None
        if j["winner"] is not None and len(record["responses"]) == 2:
            if len(j["shown_order"]) == 2:
                left = j["shown_order"][0] == j["winner"]
            lengths = [len(r["text"]) for r in record["responses"]]
            if lengths[0] != lengths[1]:
                longer = lengths[j["winner"]] == max(lengths)
        facts = (label := _label(j), j["strength"], j["time_spent_ms"], left, longer)
        self.overall.add(*facts)
        who = j["annotator"] or j["source_name"] or "unknown"
        _tally(self.per_annotator, who).add(*facts)
        metadata = record["prompt"]["metadata"]
        if metadata is not self._metadata:  # the records of one item share it: look the facets up once
            self._metadata, self._counters = metadata, []
            for facet in self.facets:
                value = (metadata or {}).get(facet)
                key = "(none)" if value is None else str(value)[:100]
                self._counters.append(self.per_facet[facet].setdefault(key, Counter()))
        for counter in self._counters:
            counter[label] += 1

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
            "facets": {f: {v: {"judgments": sum(labels.values()), "labels": _shares(labels)}
                           for v, labels in sorted(values.items())} for f, values in self.per_facet.items()},
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
    records = (canonical_record(row, context, split="", key=key) for row, context in judgment_rows(qs))
    return bias_report(records=records, facets=facets)
