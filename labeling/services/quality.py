"""Quality-control writes: campaign quality settings, gold items, the checks run on every submitted judgment
(gold scoring, low-effort flags, the gold-accuracy threshold), dynamic overlap, adjudication and flag
resolution.

The queue (``labeling.services.queue``) calls these inside its own transaction: ``gold_turn`` and
``gold_slot_for`` (mixing gold into ``next``), and from ``quality_checks`` ``judgment_quality_check`` and
``overlap_extend_if_contested`` (after a submit).
Each costs nothing for a campaign that leaves the feature off, and at most a few indexed queries otherwise.
"""
from __future__ import annotations

import random
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q

from ..errors import NotFound, ValidationError
from ..events import send_event_on_commit
from ..locks import assignment_slots_open_for_update
from ..models import (
    Assignment,
    Campaign,
    ComparisonItem,
    GoldResult,
    ItemSkip,
    Judgment,
    Round,
)
from . import quality_labels as ql
from .validation import JudgmentInput, judgment_validate

QUALITY_FIELDS = frozenset(
    {
        "gold_rate",
        "gold_min_accuracy",
        "gold_min_judged",
        "gold_action",
        "min_time_ms",
        "position_streak",
        "tie_streak",
        "overlap_mode",
        "overlap_max",
        "consensus_threshold",
        "review_threshold",
    }
)
# An annotator with no gold record is assumed right this often (published pairwise agreement is 63-77%),
# and gold results are blended with that prior as if it were this many judgments.
DEFAULT_ACCURACY = 0.75
PRIOR_WEIGHT = 2
GOLD_WINDOW = 20  # the threshold looks at this many most recent gold judgments, so an annotator can recover
SCORED_SOURCES = (Judgment.Source.HUMAN, Judgment.Source.SIMULATED)


def _quality_check(campaign: Campaign) -> None:
    def between(name: str, low: float, high: float) -> None:
        value = getattr(campaign, name)
        if value is not None and not low <= value <= high:
            raise ValidationError(f"{name} must be between {low} and {high} (got {value})", field=name)

    between("gold_rate", 0.0, 0.5)
    between("gold_min_accuracy", 0.0, 1.0)
    between("gold_min_judged", 1, 1000)
    between("min_time_ms", 0, 600_000)
    between("position_streak", 0, 1000)
    between("tie_streak", 0, 1000)
    between("overlap_max", 1, 50)
    between("consensus_threshold", 0.5, 1.0)
    between("review_threshold", 0.0, 1.0)
    if campaign.gold_action not in ("flag", "pause"):
        raise ValidationError("gold_action must be flag or pause", field="gold_action")
    if campaign.overlap_mode not in ("fixed", "dynamic"):
        raise ValidationError("overlap_mode must be fixed or dynamic", field="overlap_mode")
    if campaign.overlap_mode == "dynamic" and campaign.overlap_max < campaign.overlap:
        raise ValidationError(
            f"overlap_max ({campaign.overlap_max}) must be at least overlap ({campaign.overlap}), the starting k",
            field="overlap_max",
        )


@transaction.atomic
def campaign_quality_update(*, campaign: Campaign, **fields: Any) -> Campaign:
    """Change quality settings. Dynamic overlap starts every item at ``overlap`` (k_min) slots and adds one
    at a time up to ``overlap_max`` while the item's consensus confidence is below ``consensus_threshold``."""
    unknown = set(fields) - QUALITY_FIELDS
    if unknown:
        raise ValidationError(f"unknown quality settings: {sorted(unknown)}", field=sorted(unknown)[0])
    for key, value in fields.items():
        setattr(campaign, key, value)
    _quality_check(campaign)
    campaign.save(update_fields=[*fields, "updated_at"])
    send_event_on_commit(campaign_id=campaign.pk, type="campaign.updated", payload={"fields": sorted(fields)})
    return campaign


# --- gold items -------------------------------------------------------------------------------------------


def _gold_answer(*, campaign: Campaign, item: ComparisonItem, answer: JudgmentInput) -> dict:
    response_ids = list(item.item_responses.order_by("position").values_list("response_id", flat=True))
    # Validate as a judgment would be, minus the rationale rule (a gold answer needs no rationale).
    probe = JudgmentInput(
        winner=answer.winner, tie=answer.tie, both_bad=answer.both_bad, ranking=answer.ranking,
        rationale="gold" if campaign.rationale == Campaign.Rationale.REQUIRED else "",
    )
    fields = judgment_validate(campaign=campaign, item_kind=item.kind, response_ids=response_ids, data=probe)
    if item.kind == ComparisonItem.Kind.RANKING:
        return {"ranking": fields["ranking"]}
    positions = {rid: i for i, rid in enumerate(response_ids)}
    return {"label": ql.label(fields, positions)}


def _gold_rescore(*, item: ComparisonItem) -> int:
    GoldResult.objects.filter(item=item).delete()
    if not item.is_gold:
        return 0
    positions = ql.positions_for([item.pk]).get(item.pk, {})
    rows = Judgment.objects.filter(item=item, source__in=SCORED_SOURCES, annotator__isnull=False).values(
        *ql.JUDGMENT_FIELDS, "campaign_id"
    )
    results = [
        GoldResult(
            judgment_id=j["id"], campaign_id=j["campaign_id"], item=item, annotator_id=j["annotator_id"],
            correct=ql.gold_answer_matches(item.gold_answer, j, positions),
        )
        for j in rows
    ]
    GoldResult.objects.bulk_create(results)
    return len(results)


@transaction.atomic
def gold_mark(*, campaign: Campaign, item: ComparisonItem, answer: JudgmentInput) -> ComparisonItem:
    """Make ``item`` a gold item with a known answer. Its free slots leave the ordinary queue: gold items are
    served to each annotator at ``campaign.gold_rate`` instead (``gold_slot_for``). Judgments it already has
    are scored against the answer (and re-scored when the answer is corrected)."""
    if item.campaign_id != campaign.pk:
        raise NotFound(f"item {item.pk} not found in campaign {campaign.pk}")
    item.gold_answer = _gold_answer(campaign=campaign, item=item, answer=answer)
    item.is_gold = True
    item.save(update_fields=["is_gold", "gold_answer"])
    Assignment.objects.filter(item=item, state=Assignment.State.AVAILABLE).delete()
    _gold_rescore(item=item)
    return item


@transaction.atomic
def gold_unmark(*, campaign: Campaign, item: ComparisonItem) -> ComparisonItem:
    """Back to an ordinary item: its gold results go, and it gets free slots up to ``campaign.overlap``."""
    if item.campaign_id != campaign.pk or not item.is_gold:
        raise NotFound(f"gold item {item.pk} not found in campaign {campaign.pk}")
    item.is_gold = False
    item.gold_answer = {}
    item.save(update_fields=["is_gold", "gold_answer"])
    _gold_rescore(item=item)
    missing = campaign.overlap - Assignment.objects.filter(item=item).count()
    Assignment.objects.bulk_create(
        [Assignment(campaign=campaign, round_id=item.round_id, item=item) for _ in range(max(missing, 0))]
    )
    if missing > 0:
        ComparisonItem.objects.filter(pk=item.pk, status=ComparisonItem.Status.COMPLETE).update(
            status=ComparisonItem.Status.OPEN
        )
    return item


@transaction.atomic
def gold_from_labels(*, campaign: Campaign, source_name: str) -> int:
    """Turn items imported with a known label (``LabelSpec``, stored as an imported judgment by
    ``source_name``) into gold items with that label as the answer. Returns how many items became gold."""
    imported = Judgment.objects.filter(
        campaign=campaign, source=Judgment.Source.IMPORTED, source_name=source_name
    ).values(*ql.JUDGMENT_FIELDS)
    rows = list(imported)
    if not rows:
        raise NotFound(f"no imported labels by {source_name!r} in campaign {campaign.pk}", field="source_name")
    positions = ql.positions_for(r["item_id"] for r in rows)
    marked = 0
    for row in rows:
        item = ComparisonItem.objects.get(pk=row["item_id"])
        if row["kind"] == Judgment.Kind.RANKING:
            item.gold_answer = {"ranking": row["ranking"]}
        else:
            item.gold_answer = {"label": ql.label(row, positions[item.pk])}
        item.is_gold = True
        item.save(update_fields=["is_gold", "gold_answer"])
        Assignment.objects.filter(item=item, state=Assignment.State.AVAILABLE).delete()
        _gold_rescore(item=item)
        marked += 1
    return marked


def gold_turn(*, campaign: Campaign) -> bool:
    """Whether this ``next`` serves a gold item: with probability ``campaign.gold_rate``."""
    return campaign.gold_rate > 0 and random.random() < campaign.gold_rate


def gold_slot_for(*, user: AbstractBaseUser, campaign: Campaign, now) -> int | None:
    """On a gold turn (``gold_turn``), the id of a slot of a gold item this annotator neither holds nor has
    skipped or judged (a released one may come back, as an ordinary item may), or None when there is none; the caller
    leases it. A gold slot that was released, skipped or left to expire stays a gold slot: it is handed out here
    again, to someone else, before a new slot is made (the ordinary queue never serves gold items). Runs inside
    the queue's transaction and locks the free slot it reuses (``assignment_slots_open_for_update``); two
    concurrent calls that make a slot of the same gold item for one annotator hit the (item, annotator)
    constraint and the queue retries."""
    candidates = list(
        ComparisonItem.objects.filter(campaign=campaign, is_gold=True, round__status=Round.Status.OPEN)
        .exclude(status=ComparisonItem.Status.RETIRED)
        .exclude(pk__in=Assignment.objects.filter(campaign=campaign, annotator=user).values("item_id"))
        .exclude(pk__in=ItemSkip.objects.filter(annotator=user, item__campaign=campaign).values("item_id"))
        .values_list("pk", "round_id")[:50]
    )
    if not candidates:
        return None
    item_id, round_id = random.choice(candidates)
    free = assignment_slots_open_for_update(
        Assignment.objects.filter(item_id=item_id).filter(
            Q(state=Assignment.State.AVAILABLE) | Q(state=Assignment.State.LEASED, lease_expires_at__lt=now)
        )
    ).order_by("id").values_list("pk", flat=True).first()
    if free is not None:
        return free
    return Assignment.objects.create(campaign=campaign, round_id=round_id, item_id=item_id).pk
