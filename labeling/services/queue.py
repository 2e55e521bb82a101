"""The annotator queue, the hot path: next, submit, skip, release, undo.

Each call is a few indexed statements in one transaction, hand-written for next and submit
(``labeling.services.queue_sql``: the ORM cost more than the database there). ``next`` locks a free slot with
``FOR UPDATE SKIP LOCKED`` (see ``labeling.locks``) so concurrent annotators never wait on, or share, a slot;
``submit`` locks the one slot it fills, so a retried submit waits for the first and then returns its result.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import Conflict, NotFound, PermissionDenied
from ..events import send_event_on_commit
from ..locks import assignment_lock, item_lock
from ..models import (
    Assignment,
    Campaign,
    ItemResponse,
    ItemSkip,
    Judgment,
    Role,
    Round,
)
from ..selectors import user_roles
from . import queue_sql as sql
from .quality import gold_slot_for, gold_turn
from .quality_checks import judgment_quality_check, overlap_extend_if_contested, streak_length
from .validation import JudgmentInput, judgment_validate


@dataclass(frozen=True)
class SubmitResult:
    judgment: Judgment
    created: bool  # False when a retried submit returned the judgment stored the first time
    extra: dict = field(default_factory=dict)


def _require_annotator(*, user: AbstractBaseUser, campaign: Campaign) -> None:
    """Inside ``next``'s transaction, its first statement (``queue_sql.next_begin``)."""
    annotator, paused, reason = sql.next_begin(campaign_id=campaign.pk, user_id=user.pk)
    if not user.is_staff:
        if not annotator:
            raise PermissionDenied(f"this needs the annotator role in campaign {campaign.pk}")
        if paused:
            raise PermissionDenied(f"you are paused in campaign {campaign.pk}" + (f": {reason}" if reason else ""))
    if campaign.status != Campaign.Status.ACTIVE:
        raise Conflict(f"campaign {campaign.pk} is {campaign.status}, not active: it hands out no items")


def _expires(campaign: Campaign, now):
    return now + timedelta(seconds=campaign.lease_seconds)


# With ``exclude``, an annotator may hold this many leases at once: the item on screen, the one prefetched
# behind it, and one whose judgment is still on its way.
MAX_LEASES = 3


@transaction.atomic
def _assignment_next_once(*, user: AbstractBaseUser, campaign: Campaign, exclude: frozenset[int]) -> Assignment | None:
    """Renew a slot the annotator holds, else lease a free one (now and then a gold one). On PostgreSQL, without
    a gold turn, that is one statement (``queue_sql.next_sql``); otherwise the same steps one by one."""
    _require_annotator(user=user, campaign=campaign)
    now = timezone.now()
    excluded = {f"x{i}": x for i, x in enumerate(sorted(exclude))}
    params = {"campaign": campaign.pk, "user": user.pk, "now": sql.prep(Assignment, "leased_at", now),
              "expires": sql.prep(Assignment, "lease_expires_at", _expires(campaign, now)), "cap": MAX_LEASES,
              **excluded}
    gold = gold_turn(campaign=campaign)
    if not gold and sql.next_in_one_statement():
        return sql.lease(f"lw_next_{len(excluded)}", sql.next_sql(len(excluded)), params)
    # 1. A slot this annotator already holds (a reload, a second tab, an expired lease nobody took) and is not
    #    showing already: renew it, keeping the order it was shown in.
    own = sql.lease(f"lw_held_renew_{len(excluded)}", sql.held_renew_sql(len(excluded)), params)
    if own is not None:
        return own
    if exclude and Assignment.objects.filter(
        campaign=campaign, annotator=user, state=Assignment.State.LEASED, round__status=Round.Status.OPEN
    ).count() >= MAX_LEASES:
        return None
    # 2a. On a gold turn (campaign.gold_rate), a gold item, leased like any other so nothing gives it away.
    gold_slot = gold_slot_for(user=user, campaign=campaign, now=now) if gold else None
    if gold_slot is not None:
        return sql.lease("lw_lease_slot", sql.lease_slot_sql(), {**params, "slot": gold_slot})
    # 2. A free slot, or one whose lease ran out, of an ordinary item this annotator has neither held nor skipped.
    return sql.lease("lw_lease_free", sql.lease_free_sql(), params)


def assignment_next(
    *, user: AbstractBaseUser, campaign: Campaign, exclude: frozenset[int] | set[int] = frozenset()
) -> Assignment | None:
    """Lease the annotator's next slot, or None when nothing is left for them.

    ``exclude`` names slots the client already shows: with it, the call prefetches a second item (up to
    ``MAX_LEASES`` leases at once), so a submit can show the next item without waiting.

    Takes a row lock (``slot_pick_lock_sql``, SKIP LOCKED). Two concurrent calls by the same annotator can
    pick two slots of one item; the unique (item, annotator) constraint refuses the second, which then
    retries and finds the first one's lease."""
    for _attempt in range(3):
        try:
            slot = _assignment_next_once(user=user, campaign=campaign, exclude=frozenset(exclude))
        except IntegrityError:
            continue
        if slot is not None:
            slot.annotator = user
        return slot  # no live event per lease: the dashboard's queue depth moves with judgments
    raise Conflict("could not lease an item after 3 attempts; try again")


def _own_or_free(*, user: AbstractBaseUser, slot: Assignment, is_annotator: bool) -> Assignment:
    """``slot`` if ``user`` holds it. A slot another annotator took over is a 409 for an annotator of that
    campaign (their lease ran out), and a 404 for anyone else."""
    if slot.annotator_id == user.pk:
        return slot
    if not is_annotator:
        raise NotFound(f"assignment {slot.pk} not found")
    if slot.state == Assignment.State.AVAILABLE:
        return slot  # free again: a late submit may still fill it
    raise Conflict(f"assignment {slot.pk}: your lease expired and another annotator has taken this slot")


def _locked_own_slot(*, user: AbstractBaseUser, assignment_id: int) -> Assignment:
    """The slot (with its campaign and item), locked, if ``user`` holds it; see ``_own_or_free``."""
    slot = assignment_lock(assignment_id).select_related("campaign", "item").first()
    if slot is None:
        raise NotFound(f"assignment {assignment_id} not found")
    is_annotator = slot.annotator_id != user.pk and Role.ANNOTATOR in user_roles(user=user, campaign=slot.campaign)
    return _own_or_free(user=user, slot=slot, is_annotator=is_annotator)


def _judgment_replay(*, user: AbstractBaseUser, assignment_id: int, client_id: uuid.UUID | None) -> Judgment | None:
    if client_id is None:
        return None
    existing = Judgment.objects.filter(annotator=user, client_id=client_id).first()
    if existing is not None and existing.assignment_id != assignment_id:
        raise Conflict(
            f"client_id {client_id} was already used for assignment {existing.assignment_id}", field="client_id"
        )
    return existing


def judgment_record(*, user: AbstractBaseUser, assignment_id: int, data: JudgmentInput) -> SubmitResult:
    """Store the judgment for a slot and complete the slot. Idempotent on ``data.client_id``: a retry returns
    the judgment stored the first time and writes nothing.

    Takes the slot's row lock and then its item's (``slot_and_item_lock_sql``). A submit after the lease
    expired is accepted while the slot is still this annotator's (or free again); once another annotator holds
    it, it is a 409."""
    try:
        return _judgment_record(user=user, assignment_id=assignment_id, data=data)
    except IntegrityError:
        # The (annotator, client_id) constraint refused the insert, and the whole transaction rolled back: the
        # client_id was used before. Checking it here, rather than before every insert, saves the hot path a query.
        replay = _judgment_replay(user=user, assignment_id=assignment_id, client_id=data.client_id)
        if replay is None:
            raise
        return SubmitResult(judgment=replay, created=False)


@transaction.atomic
def _judgment_record(*, user: AbstractBaseUser, assignment_id: int, data: JudgmentInput) -> SubmitResult:
    locked = sql.submit_lock(slot_id=assignment_id, user_id=user.pk)
    if locked is None:
        raise NotFound(f"assignment {assignment_id} not found")
    slot, item, campaign, round_target, is_annotator = locked
    is_annotator = is_annotator or user.is_staff
    slot = _own_or_free(user=user, slot=slot, is_annotator=is_annotator)
    if slot.state == Assignment.State.DONE:
        # Read under the slot's lock: a concurrent retry of this submit has finished by now if it ran first.
        replay = _judgment_replay(user=user, assignment_id=assignment_id, client_id=data.client_id)
        if replay is not None:
            return SubmitResult(judgment=replay, created=False)
        raise Conflict(f"assignment {assignment_id} is already judged; use undo to change it")
    if not is_annotator:
        raise PermissionDenied(f"this needs the annotator role in campaign {campaign.pk}")
    # The slot's shown order holds exactly the item's responses; a slot that was free again has none.
    response_ids = list(slot.shown_order) or list(
        ItemResponse.objects.filter(item_id=item.pk).order_by("position").values_list("response_id", flat=True)
    )
    fields = judgment_validate(campaign=campaign, item_kind=item.kind, response_ids=response_ids, data=data)
    now = timezone.now()
    if slot.state == Assignment.State.AVAILABLE:  # released or expired, then submitted: take it back
        if Assignment.objects.filter(item_id=item.pk, annotator=user).exists():
            raise Conflict(f"assignment {assignment_id}: you already hold another slot of item {item.pk}")
        slot.annotator_id = user.pk
        slot.shown_order = response_ids
    slot.state = Assignment.State.DONE
    slot.completed_at = now
    judgment = Judgment(
        campaign=campaign, round_id=slot.round_id, item=item, assignment=slot, annotator=user,
        source=Judgment.Source.HUMAN, shown_order=slot.shown_order, client_id=data.client_id,
        rationale=data.rationale.strip(), time_spent_ms=data.time_spent_ms, created_at=now, **fields,
    )
    # Completes the slot, stores the judgment, sets the item's status, reads the annotator's earlier judgments.
    earlier = sql.submit_write(judgment=judgment, n_earlier=streak_length(campaign))
    judgment_quality_check(judgment=judgment, campaign=campaign, item=item, earlier=earlier)
    if overlap_extend_if_contested(campaign=campaign, item=item):
        sql.item_status_refresh(item_id=item.pk)  # a new slot: open again
    send_event_on_commit(
        campaign_id=campaign.pk,
        type="judgment.recorded",
        # round_target lets a subscriber waiting for the round's target skip rounds that have none, query-free.
        payload={"judgment": judgment.pk, "item": item.pk, "annotator": user.pk, "round": slot.round_id,
                 "round_target": round_target},
    )
    return SubmitResult(judgment=judgment, created=True)


def _item_refresh_status(*, item_id: int) -> None:
    """Complete an item once none of its slots is open, reopen it when one is. Takes the item's lock
    (``item_lock``), after the caller's slot lock."""
    item_lock(item_id).values_list("pk").first()
    sql.item_status_refresh(item_id=item_id)


def _slot_free(slot: Assignment) -> None:
    slot.annotator = None
    slot.state = Assignment.State.AVAILABLE
    slot.lease_expires_at = None
    slot.leased_at = None
    slot.shown_order = []
    slot.save(update_fields=["annotator", "state", "lease_expires_at", "leased_at", "shown_order"])


@transaction.atomic
def assignment_release(*, user: AbstractBaseUser, assignment_id: int) -> Assignment:
    """Give a leased slot back to the pool; the item may come back to this annotator later, gold or not (a gold
    slot goes back to the gold path, see ``gold_slot_for``: treating it otherwise would let an annotator tell gold
    apart by releasing items). Takes the slot's row lock."""
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
