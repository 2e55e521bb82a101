"""The annotator queue, the hot path: next, submit, skip, release, undo.

Each call is a few indexed queries in one transaction. ``next`` locks a free slot with
``FOR UPDATE SKIP LOCKED`` (see ``labeling.locks``) so concurrent annotators never wait on, or share, a slot;
``submit`` locks the one slot it fills, so a retried submit waits for the first and then returns its result.
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from ..errors import Conflict, NotFound, PermissionDenied
from ..events import send_event_on_commit
from ..locks import assignment_lock, assignment_slots_open_for_update, item_lock
from ..models import (
    Assignment,
    Campaign,
    ComparisonItem,
    ItemResponse,
    ItemSkip,
    Judgment,
    Role,
    Round,
)
from ..selectors import annotator_pause_reason, require_role, user_roles
from .quality import gold_slot_for
from .quality_checks import judgment_quality_check, overlap_extend_if_contested
from .validation import JudgmentInput, judgment_validate


@dataclass(frozen=True)
class SubmitResult:
    judgment: Judgment
    created: bool  # False when a retried submit returned the judgment stored the first time
    extra: dict = field(default_factory=dict)


def _require_annotator(*, user: AbstractBaseUser, campaign: Campaign) -> None:
    paused = annotator_pause_reason(user=user, campaign=campaign)  # also checks the annotator role
    if paused is not None:
        reason = f": {paused}" if paused else ""
        raise PermissionDenied(f"you are paused in campaign {campaign.pk}{reason}")
    if campaign.status != Campaign.Status.ACTIVE:
        raise Conflict(f"campaign {campaign.pk} is {campaign.status}, not active: it hands out no items")


def _lease(assignment: Assignment, *, user: AbstractBaseUser, campaign: Campaign, now) -> Assignment:
    """Give the slot to ``user`` with a fresh lease and a random display order of the item's responses."""
    response_ids = list(
        ItemResponse.objects.filter(item_id=assignment.item_id).order_by("position").values_list("response_id", flat=True)
    )
    random.SystemRandom().shuffle(response_ids)
    assignment.annotator = user
    assignment.state = Assignment.State.LEASED
    assignment.leased_at = now
    assignment.lease_expires_at = now + timedelta(seconds=campaign.lease_seconds)
    assignment.shown_order = response_ids
    assignment.save(update_fields=["annotator", "state", "leased_at", "lease_expires_at", "shown_order"])
    return assignment


# With ``exclude``, an annotator may hold this many leases at once: the item on screen, the one prefetched
# behind it, and one whose judgment is still on its way.
MAX_LEASES = 3


@transaction.atomic
def _assignment_next_once(*, user: AbstractBaseUser, campaign: Campaign, exclude: frozenset[int]) -> Assignment | None:
    now = timezone.now()
    # 1. A slot this annotator already holds (a reload, a second tab, an expired lease nobody took) and is not
    #    showing already: renew it, keeping the order it was shown in.
    held = Assignment.objects.filter(
        campaign=campaign, annotator=user, state=Assignment.State.LEASED, round__status=Round.Status.OPEN
    )
    own = held.exclude(pk__in=exclude).order_by("id").first()
    if own is not None:
        own.lease_expires_at = now + timedelta(seconds=campaign.lease_seconds)
        own.save(update_fields=["lease_expires_at"])
        return own
    if exclude and held.count() >= MAX_LEASES:
        return None
    # 2a. Now and then (campaign.gold_rate), a gold item, leased like any other so nothing gives it away.
    gold = gold_slot_for(user=user, campaign=campaign)
    if gold is not None:
        return _lease(gold, user=user, campaign=campaign, now=now)
    # 2. A free slot, or one whose lease ran out, of an item this annotator has neither held nor skipped.
    candidates = (
        Assignment.objects.filter(campaign=campaign, round__status=Round.Status.OPEN)
        .filter(Q(state=Assignment.State.AVAILABLE) | Q(state=Assignment.State.LEASED, lease_expires_at__lt=now))
        .filter(~Exists(Assignment.objects.filter(item_id=OuterRef("item_id"), annotator=user)))
        .filter(~Exists(ItemSkip.objects.filter(item_id=OuterRef("item_id"), annotator=user)))
        .order_by("item_id", "id")
    )
    slot = assignment_slots_open_for_update(candidates).first()
    if slot is None:
        return None
    return _lease(slot, user=user, campaign=campaign, now=now)


def assignment_next(
    *, user: AbstractBaseUser, campaign: Campaign, exclude: frozenset[int] | set[int] = frozenset()
) -> Assignment | None:
    """Lease the annotator's next slot, or None when nothing is left for them.

    ``exclude`` names slots the client already shows: with it, the call prefetches a second item (up to
    ``MAX_LEASES`` leases at once), so a submit can show the next item without waiting.

    Takes a row lock (``assignment_slots_open_for_update``). Two concurrent calls by the same annotator can
    pick two slots of one item; the unique (item, annotator) constraint refuses the second, which then
    retries and finds the first one's lease."""
    _require_annotator(user=user, campaign=campaign)
    for _attempt in range(3):
        try:
            slot = _assignment_next_once(user=user, campaign=campaign, exclude=frozenset(exclude))
        except IntegrityError:
            continue
        return slot  # no live event per lease: the dashboard's queue depth moves with judgments
    raise Conflict("could not lease an item after 3 attempts; try again")


def _locked_own_slot(*, user: AbstractBaseUser, assignment_id: int) -> Assignment:
    """The slot, locked, if ``user`` holds it. A slot another annotator took over is a 409 for an annotator
    of that campaign (their lease ran out), and a 404 for anyone else."""
    slot = assignment_lock(assignment_id).select_related("campaign").first()
    if slot is None:
        raise NotFound(f"assignment {assignment_id} not found")
    if slot.annotator_id == user.pk:
        return slot
    if Role.ANNOTATOR not in user_roles(user=user, campaign=slot.campaign):
        raise NotFound(f"assignment {assignment_id} not found")
    if slot.state == Assignment.State.AVAILABLE:
        return slot  # free again: a late submit may still fill it
    raise Conflict(f"assignment {assignment_id}: your lease expired and another annotator has taken this slot")


def _judgment_replay(*, user: AbstractBaseUser, assignment_id: int, client_id: uuid.UUID | None) -> Judgment | None:
    if client_id is None:
        return None
    existing = Judgment.objects.filter(annotator=user, client_id=client_id).first()
    if existing is not None and existing.assignment_id != assignment_id:
        raise Conflict(
            f"client_id {client_id} was already used for assignment {existing.assignment_id}", field="client_id"
        )
    return existing


@transaction.atomic
def judgment_record(*, user: AbstractBaseUser, assignment_id: int, data: JudgmentInput) -> SubmitResult:
    """Store the judgment for a slot and complete the slot. Idempotent on ``data.client_id``: a retry returns
    the judgment stored the first time and writes nothing.

    Takes the slot's row lock (``assignment_lock``). A submit after the lease expired is accepted while the
    slot is still this annotator's (or free again); once another annotator holds it, it is a 409."""
    slot = _locked_own_slot(user=user, assignment_id=assignment_id)
    # Checked under the slot's lock: a concurrent retry of this submit has finished by now if it ran first.
    replay = _judgment_replay(user=user, assignment_id=assignment_id, client_id=data.client_id)
    if replay is not None:
        return SubmitResult(judgment=replay, created=False)
    if slot.state == Assignment.State.DONE:
        raise Conflict(f"assignment {assignment_id} is already judged; use undo to change it")
    campaign = slot.campaign
    require_role(user=user, campaign=campaign, roles=[Role.ANNOTATOR])
    # Lock the item now (after the slot, the one lock order) since its status is decided below.
    item = item_lock(slot.item_id).get()
    # The slot's shown order holds exactly the item's responses; a slot that was free again has none.
    response_ids = list(slot.shown_order) or list(
        ItemResponse.objects.filter(item_id=item.pk).order_by("position").values_list("response_id", flat=True)
    )
    fields = judgment_validate(campaign=campaign, item_kind=item.kind, response_ids=response_ids, data=data)
    now = timezone.now()
    if slot.state == Assignment.State.AVAILABLE:  # released or expired, then submitted: take it back
        if Assignment.objects.filter(item_id=item.pk, annotator=user).exists():
            raise Conflict(f"assignment {assignment_id}: you already hold another slot of item {item.pk}")
        slot.annotator = user
        slot.shown_order = response_ids
    slot.state = Assignment.State.DONE
    slot.completed_at = now
    slot.save(update_fields=["annotator", "state", "completed_at", "shown_order"])
    judgment = Judgment.objects.create(
        campaign=campaign,
        round_id=slot.round_id,
        item=item,
        assignment=slot,
        annotator=user,
        source=Judgment.Source.HUMAN,
        shown_order=slot.shown_order,
        client_id=data.client_id,
        rationale=data.rationale.strip(),
        time_spent_ms=data.time_spent_ms,
        **fields,
    )
    judgment_quality_check(judgment=judgment, campaign=campaign, item=item)
    overlap_extend_if_contested(campaign=campaign, item=item)
    _item_refresh_status(item_id=item.pk, locked=True)
    send_event_on_commit(
        campaign_id=campaign.pk,
        type="judgment.recorded",
        payload={"judgment": judgment.pk, "item": item.pk, "annotator": user.pk, "round": slot.round_id},
    )
    return SubmitResult(judgment=judgment, created=True)


def _item_refresh_status(*, item_id: int, locked: bool = False) -> None:
    """Complete an item once none of its slots is open, reopen it when one is. Takes the item's lock
    (``item_lock``), after the caller's slot lock, unless the caller holds it already."""
    if not locked:
        item_lock(item_id).values_list("pk").first()
    open_slots = Assignment.objects.filter(item_id=item_id).exclude(state=Assignment.State.DONE).exists()
    status = ComparisonItem.Status.OPEN if open_slots else ComparisonItem.Status.COMPLETE
    ComparisonItem.objects.filter(pk=item_id).exclude(status=ComparisonItem.Status.RETIRED).exclude(
        status=status
    ).update(status=status)


def _slot_free(slot: Assignment) -> None:
    slot.annotator = None
    slot.state = Assignment.State.AVAILABLE
    slot.lease_expires_at = None
    slot.leased_at = None
    slot.shown_order = []
    slot.save(update_fields=["annotator", "state", "lease_expires_at", "leased_at", "shown_order"])


@transaction.atomic
def assignment_release(*, user: AbstractBaseUser, assignment_id: int) -> Assignment:
    """Give a leased slot back to the pool; the item may come back to this annotator later.
    Takes the slot's row lock."""
    slot = _locked_own_slot(user=user, assignment_id=assignment_id)
    if slot.state != Assignment.State.LEASED or slot.annotator_id != user.pk:
        raise Conflict(f"assignment {assignment_id} is {slot.state}, not leased to you: nothing to release")
    _slot_free(slot)
    send_event_on_commit(campaign_id=slot.campaign_id, type="assignment.released", payload={"annotator": user.pk})
    return slot


@transaction.atomic
def assignment_skip(*, user: AbstractBaseUser, assignment_id: int, reason: str = "") -> Assignment:
    """Give a leased slot back and never offer this item to this annotator again. Takes the slot's row lock."""
    slot = _locked_own_slot(user=user, assignment_id=assignment_id)
    if slot.state != Assignment.State.LEASED or slot.annotator_id != user.pk:
        raise Conflict(f"assignment {assignment_id} is {slot.state}, not leased to you: nothing to skip")
    ItemSkip.objects.get_or_create(item_id=slot.item_id, annotator=user, defaults={"reason": reason[:300]})
    _slot_free(slot)
    send_event_on_commit(campaign_id=slot.campaign_id, type="assignment.skipped", payload={"annotator": user.pk})
    return slot


@transaction.atomic
def judgment_undo(*, user: AbstractBaseUser, judgment_id: int) -> Assignment:
    """Take back one's own judgment while the slot's lease still runs: the judgment is deleted and the slot is
    leased to the annotator again (same shown order), so they can judge it anew. Takes the slot's row lock."""
    judgment = Judgment.objects.filter(pk=judgment_id, annotator=user).first()
    if judgment is None or judgment.assignment_id is None:
        raise NotFound(f"judgment {judgment_id} not found")
    slot = assignment_lock(judgment.assignment_id).first()
    if slot is None or slot.annotator_id != user.pk:
        raise NotFound(f"judgment {judgment_id} not found")
    if slot.lease_expires_at is None or slot.lease_expires_at < timezone.now():
        raise Conflict(f"judgment {judgment_id} can no longer be undone: its lease has expired")
    judgment.delete()
    slot.state = Assignment.State.LEASED
    slot.completed_at = None
    slot.save(update_fields=["state", "completed_at"])
    _item_refresh_status(item_id=slot.item_id)
    send_event_on_commit(campaign_id=slot.campaign_id, type="judgment.undone", payload={"judgment": judgment_id})
    return slot
