"""Checks run as judgments arrive (inside the queue's submit transaction), dynamic overlap, adjudication and
flag resolution.

- ``judgment_quality_check``: low-effort flags (too fast, same shown position, tie streak) and, for a gold
  item, scoring against the gold answer and the campaign's gold-accuracy threshold (pause or flag). Flags
  never touch the judgment.
- ``overlap_extend_if_contested``: dynamic overlap. When an item's last open slot is filled and its
  consensus confidence (``vote_posterior`` weighted by each annotator's smoothed gold accuracy) is still
  below the threshold, one more slot is added, up to ``overlap_max``.
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from ..errors import Conflict, NotFound
from ..events import send_event_on_commit
from ..locks import item_lock
from ..models import Assignment, Campaign, ComparisonItem, GoldResult, Judgment, QualityFlag
from ..quality.aggregation import Consensus, vote_posterior
from ..quality.agreement import wilson_interval
from . import quality_labels as ql
from .campaigns import membership_set_paused
from .quality import DEFAULT_ACCURACY, GOLD_WINDOW, PRIOR_WEIGHT, SCORED_SOURCES
from .validation import JudgmentInput, judgment_validate

GOLD_Z = 1.2816  # one-sided 90%


def _as_row(judgment: Judgment) -> dict:
    return {f: getattr(judgment, f) for f in ql.JUDGMENT_FIELDS}


def _shown_position(row: dict) -> int | None:
    """Which on-screen position the annotator picked (0 = first shown), or None for a tie / both-bad."""
    if row["kind"] == Judgment.Kind.PAIRWISE:
        chosen = row["winner_id"]
    else:
        chosen = row["ranking"][0][0] if len(row["ranking"][0]) == 1 else None
    if chosen is None or chosen not in (row["shown_order"] or []):
        return None
    return row["shown_order"].index(chosen)


def _has_open_flag(*, campaign: Campaign, annotator_id: int, kind: str) -> bool:
    return QualityFlag.objects.filter(
        campaign=campaign, annotator_id=annotator_id, kind=kind, resolved_at__isnull=True
    ).exists()


def streak_length(campaign: Campaign) -> int:
    """How many of an annotator's latest judgments the streak checks look at (0: they are off)."""
    return max(campaign.position_streak, campaign.tie_streak)


def _streak_flags(*, judgment: Judgment, campaign: Campaign, earlier: list[dict]) -> list[QualityFlag]:
    n = streak_length(campaign)
    if not n:
        return []
    row = {f: getattr(judgment, f) for f in ("winner_id", "shown_order", "ranking", "tie", "kind")}
    recent = [row, *earlier[: n - 1]]
    flags = []
    p = campaign.position_streak
    if p and len(recent) >= p:
        positions = {_shown_position(r) for r in recent[:p]}
        if len(positions) == 1 and None not in positions:
            kind = QualityFlag.Kind.SAME_POSITION
            if not _has_open_flag(campaign=campaign, annotator_id=judgment.annotator_id, kind=kind):
                spot = positions.pop() + 1
                flags.append(QualityFlag(kind=kind, message=f"picked shown position {spot} {p} times in a row"))
    t = campaign.tie_streak
    if t and len(recent) >= t and all(r["tie"] for r in recent[:t]):
        kind = QualityFlag.Kind.TIE_STREAK
        if not _has_open_flag(campaign=campaign, annotator_id=judgment.annotator_id, kind=kind):
            flags.append(QualityFlag(kind=kind, message=f"{t} ties in a row"))
    return flags


def _gold_threshold(*, campaign: Campaign, annotator: AbstractBaseUser) -> QualityFlag | None:
    """Pause or flag the annotator when their recent gold accuracy is clearly below the campaign's threshold:
    when even the upper end of its one-sided 90% Wilson interval is below it. A good annotator's unlucky
    streak on a handful of gold items is not punished; a random one is caught within about 6-10 gold items."""
    threshold = campaign.gold_min_accuracy
    if threshold is None:
        return None
    recent = list(
        GoldResult.objects.filter(campaign=campaign, annotator=annotator)
        .order_by("-id")
        .values_list("correct", flat=True)[:GOLD_WINDOW]
    )
    if len(recent) < campaign.gold_min_judged:
        return None
    accuracy = sum(recent) / len(recent)
    upper = wilson_interval(sum(recent), len(recent), z=GOLD_Z)[1]
    if upper >= threshold:
        return None
    message = (
        f"gold accuracy {accuracy:.0%} on the last {len(recent)} gold items is below the campaign's "
        f"{threshold:.0%} (90% upper bound {upper:.0%})"
    )
    if campaign.gold_action == "pause":
        membership_set_paused(campaign=campaign, user=annotator, paused=True, reason=message)
        # Their other leases go back to the pool now rather than when they expire.
        Assignment.objects.filter(campaign=campaign, annotator=annotator, state=Assignment.State.LEASED).update(
            annotator=None, state=Assignment.State.AVAILABLE, lease_expires_at=None, leased_at=None, shown_order=[]
        )
        send_event_on_commit(campaign_id=campaign.pk, type="annotator.paused", payload={"annotator": annotator.pk})
    kind = QualityFlag.Kind.GOLD_ACCURACY
    if _has_open_flag(campaign=campaign, annotator_id=annotator.pk, kind=kind):
        return None
    return QualityFlag(kind=kind, message=message, detail={"accuracy": accuracy, "gold_judged": len(recent)})


def judgment_quality_check(
    *, judgment: Judgment, campaign: Campaign, item: ComparisonItem, earlier: list[dict]
) -> list[QualityFlag]:
    """Run the per-judgment checks; returns the flags it stored. Called by the queue inside the submit
    transaction, which reads ``earlier`` with its own writes: the annotator's judgments in the campaign before
    this one, newest first, at least ``streak_length`` of them when there are (dicts of winner_id,
    shown_order, ranking, tie, kind). No query unless a flag is raised, and a few for gold items."""
    flags = []
    ms = judgment.time_spent_ms
    if campaign.min_time_ms and ms is not None and ms < campaign.min_time_ms:
        flags.append(
            QualityFlag(
                kind=QualityFlag.Kind.TOO_FAST,
                message=f"judged in {ms} ms, under the campaign's minimum of {campaign.min_time_ms} ms",
                detail={"time_spent_ms": ms},
            )
        )
    flags += _streak_flags(judgment=judgment, campaign=campaign, earlier=earlier)
    if item.is_gold:
        positions = ql.positions_for([item.pk])[item.pk]
        correct = ql.gold_answer_matches(item.gold_answer, _as_row(judgment), positions)
        GoldResult.objects.create(
            judgment=judgment, campaign=campaign, item=item, annotator=judgment.annotator, correct=correct
        )
        gold_flag = _gold_threshold(campaign=campaign, annotator=judgment.annotator)
        if gold_flag is not None:
            flags.append(gold_flag)
    for flag in flags:
        flag.campaign = campaign
        flag.annotator_id = judgment.annotator_id
        flag.judgment = judgment
    QualityFlag.objects.bulk_create(flags)
    if flags:
        send_event_on_commit(
            campaign_id=campaign.pk, type="quality.flagged",
            payload={"annotator": judgment.annotator_id, "kinds": [f.kind for f in flags]},
        )
    return flags


def annotator_accuracies(*, campaign: Campaign, annotator_ids) -> dict[int, float]:
    """Each annotator's gold accuracy, smoothed towards ``DEFAULT_ACCURACY`` (as if ``PRIOR_WEIGHT`` more gold
    judgments at that rate): few gold results move it little, many decide it. One aggregate query."""
    rows = (
        GoldResult.objects.filter(campaign=campaign, annotator_id__in=list(annotator_ids))
        .values("annotator_id")
        .annotate(n=Count("id"), right=Count("id", filter=Q(correct=True)))
    )
    found = {r["annotator_id"]: (r["right"] + DEFAULT_ACCURACY * PRIOR_WEIGHT) / (r["n"] + PRIOR_WEIGHT) for r in rows}
    return {a: found.get(a, DEFAULT_ACCURACY) for a in annotator_ids}


def item_confidence(*, campaign: Campaign, item: ComparisonItem) -> Consensus:
    """The item's consensus from its judgments, each weighted by its annotator's smoothed gold accuracy. An
    adjudicated judgment decides alone, with confidence 1."""
    rows = list(Judgment.objects.filter(item=item).values(*ql.JUDGMENT_FIELDS))
    positions = ql.positions_for([item.pk]).get(item.pk, {})
    adjudicated = [r for r in rows if r["source"] == Judgment.Source.ADJUDICATED]
    if adjudicated:
        lab = ql.label(adjudicated[-1], positions)
        return Consensus(label=lab, confidence=1.0, votes=len(rows), posterior={lab: 1.0})
    votes = [r for r in rows if r["source"] in SCORED_SOURCES and r["annotator_id"] is not None]
    accuracy = annotator_accuracies(campaign=campaign, annotator_ids={r["annotator_id"] for r in votes})
    labels = ql.possible_labels(
        kind=item.kind, n_responses=len(positions), allow_tie=campaign.allow_tie, allow_both_bad=campaign.allow_both_bad
    )
    cast = [(ql.label(r, positions), accuracy[r["annotator_id"]]) for r in votes]
    labels += sorted({lab for lab, _ in cast} - set(labels))  # a label the settings no longer allow still counts
    return vote_posterior(cast, labels)


def overlap_extend_if_contested(*, campaign: Campaign, item: ComparisonItem) -> bool:
    """Dynamic overlap: add one free slot to ``item`` when all its slots are done, it has fewer than
    ``overlap_max`` and its consensus confidence is below ``consensus_threshold``. The caller must hold the
    item's lock (``item_lock``; ``judgment_record`` takes it) so two last submits never both add a slot."""
    if campaign.overlap_mode != "dynamic" or item.is_gold:
        return False
    slots = Assignment.objects.filter(item_id=item.pk).aggregate(
        total=Count("id"), open=Count("id", filter=~Q(state=Assignment.State.DONE))
    )
    if slots["open"] or slots["total"] >= campaign.overlap_max:
        return False
    if item_confidence(campaign=campaign, item=item).confidence >= campaign.consensus_threshold:
        return False
    Assignment.objects.create(campaign=campaign, round_id=item.round_id, item=item)
    return True


@transaction.atomic
def judgment_adjudicate(
    *, user: AbstractBaseUser, campaign: Campaign, item: ComparisonItem, data: JudgmentInput
) -> Judgment:
    """Record an adjudicator's decision on a contested item as a judgment with ``source=adjudicated`` (the
    annotators' judgments stay). One decision per item: a second one is a 409. Takes the item's lock."""
    if item.campaign_id != campaign.pk:
        raise NotFound(f"item {item.pk} not found in campaign {campaign.pk}")
    item_lock(item.pk).values_list("pk").first()
    if Judgment.objects.filter(item=item, source=Judgment.Source.ADJUDICATED).exists():
        raise Conflict(f"item {item.pk} is already adjudicated")
    response_ids = list(item.item_responses.order_by("position").values_list("response_id", flat=True))
    note = data.rationale.strip()
    probe = JudgmentInput(
        winner=data.winner, tie=data.tie, both_bad=data.both_bad, strength=data.strength, ranking=data.ranking,
        rationale=note if campaign.rationale != Campaign.Rationale.OFF else "",
    )
    if campaign.rationale == Campaign.Rationale.REQUIRED and not note:
        probe = JudgmentInput(**{**probe.__dict__, "rationale": "adjudicated"})
    fields = judgment_validate(campaign=campaign, item_kind=item.kind, response_ids=response_ids, data=probe)
    judgment = Judgment.objects.create(
        campaign=campaign, round_id=item.round_id, item=item, annotator=user, source=Judgment.Source.ADJUDICATED,
        shown_order=response_ids, rationale=note[:10_000], **fields,
    )
    send_event_on_commit(campaign_id=campaign.pk, type="item.adjudicated", payload={"item": item.pk})
    return judgment


@transaction.atomic
def flag_resolve(*, campaign: Campaign, flag_id: int, user: AbstractBaseUser) -> QualityFlag:
    """Mark a flag reviewed. The flag (and its judgment) stay; resolving twice is a no-op."""
    flag = QualityFlag.objects.filter(campaign=campaign, pk=flag_id).first()
    if flag is None:
        raise NotFound(f"flag {flag_id} not found in campaign {campaign.pk}")
    if flag.resolved_at is None:
        flag.resolved_at = timezone.now()
        flag.resolved_by = user
        flag.save(update_fields=["resolved_at", "resolved_by"])
    return flag
