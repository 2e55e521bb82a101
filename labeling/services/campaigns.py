"""Campaigns, their members and rounds."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from ..errors import Conflict, NotFound, ValidationError
from ..events import send_event_on_commit
from ..models import Assignment, Campaign, ComparisonItem, Membership, Role, Round
from .audit import audit_record

CAMPAIGN_FIELDS = frozenset(
    {
        "name",
        "guidelines",
        "overlap",
        "pairwise_enabled",
        "allow_tie",
        "allow_both_bad",
        "strength_enabled",
        "ranking_enabled",
        "rationale",
        "lease_seconds",
        "status",
    }
)


def _campaign_check(campaign: Campaign) -> None:
    if not campaign.name.strip():
        raise ValidationError("name must not be empty", field="name")
    if not 1 <= campaign.overlap <= 50:
        raise ValidationError(f"overlap must be between 1 and 50 (got {campaign.overlap})", field="overlap")
    if not (campaign.pairwise_enabled or campaign.ranking_enabled):
        raise ValidationError("turn on at least one judgment kind (pairwise or ranking)", field="pairwise_enabled")
    if not 30 <= campaign.lease_seconds <= 86_400:
        raise ValidationError("lease_seconds must be between 30 and 86400", field="lease_seconds")
    if campaign.rationale not in Campaign.Rationale.values:
        raise ValidationError(f"rationale must be one of {Campaign.Rationale.values}", field="rationale")
    if campaign.status not in Campaign.Status.values:
        raise ValidationError(f"status must be one of {Campaign.Status.values}", field="status")


@transaction.atomic
def campaign_create(*, created_by: AbstractBaseUser | None, name: str, **fields: Any) -> Campaign:
    """Create a campaign with its first round open; the creator becomes its admin."""
    unknown = set(fields) - CAMPAIGN_FIELDS
    if unknown:
        raise ValidationError(f"unknown campaign fields: {sorted(unknown)}", field=sorted(unknown)[0])
    campaign = Campaign(name=name.strip(), created_by=created_by, **fields)
    _campaign_check(campaign)
    if Campaign.objects.filter(name=campaign.name).exists():
        raise Conflict(f"a campaign named {campaign.name!r} already exists", field="name")
    campaign.save()
    Round.objects.create(campaign=campaign, number=1, name="Round 1")
    if created_by is not None:
        Membership.objects.create(campaign=campaign, user=created_by, role=Role.ADMIN)
    audit_record(action="campaign.created", actor=created_by, campaign_id=campaign.pk, object_type="campaign",
                 object_id=campaign.pk, details={"name": campaign.name})
    return campaign


@transaction.atomic
def campaign_update(*, campaign: Campaign, **fields: Any) -> Campaign:
    """Change settings. A new overlap adds slots to open items (or removes their unused ones)."""
    unknown = set(fields) - CAMPAIGN_FIELDS
    if unknown:
        raise ValidationError(f"unknown campaign fields: {sorted(unknown)}", field=sorted(unknown)[0])
    old_overlap = campaign.overlap
    for key, value in fields.items():
        setattr(campaign, key, value.strip() if key == "name" else value)
    _campaign_check(campaign)
    if "name" in fields and Campaign.objects.filter(name=campaign.name).exclude(pk=campaign.pk).exists():
        raise Conflict(f"a campaign named {campaign.name!r} already exists", field="name")
    campaign.save()
    if campaign.overlap != old_overlap:
        slots_rebalance(campaign=campaign)
    send_event_on_commit(campaign_id=campaign.pk, type="campaign.updated", payload={"fields": sorted(fields)})
    return campaign


def slots_rebalance(*, campaign: Campaign) -> dict[str, int]:
    """Make every open item of open rounds have ``campaign.overlap`` slots: add free slots where too few, and
    delete free (never leased or done) slots where too many. Items whose slots are all done become complete."""
    k = campaign.overlap
    items = (
        ComparisonItem.objects.filter(campaign=campaign, round__status=Round.Status.OPEN)
        .exclude(status=ComparisonItem.Status.RETIRED)
        .annotate(slots=Count("assignments"))
        .values_list("pk", "round_id", "slots")
    )
    added = removed = 0
    new_slots = []
    for item_id, round_id, slots in items.iterator(chunk_size=2000):
        if slots < k:
            new_slots += [Assignment(campaign=campaign, round_id=round_id, item_id=item_id) for _ in range(k - slots)]
            added += k - slots
        elif slots > k:
            spare = list(
                Assignment.objects.filter(item_id=item_id, state=Assignment.State.AVAILABLE)
                .order_by("-id")
                .values_list("pk", flat=True)[: slots - k]
            )
            removed += Assignment.objects.filter(pk__in=spare).delete()[0]
    Assignment.objects.bulk_create(new_slots, batch_size=2000)
    open_items = Assignment.objects.filter(campaign=campaign).exclude(state=Assignment.State.DONE).values("item_id")
    ComparisonItem.objects.filter(campaign=campaign, status=ComparisonItem.Status.COMPLETE, pk__in=open_items).update(
        status=ComparisonItem.Status.OPEN
    )
    ComparisonItem.objects.filter(campaign=campaign, status=ComparisonItem.Status.OPEN).exclude(
        pk__in=open_items
    ).filter(assignments__isnull=False).update(status=ComparisonItem.Status.COMPLETE)
    return {"added": added, "removed": removed}


@transaction.atomic
def membership_add(*, campaign: Campaign, user: AbstractBaseUser, role: str,
                   changed_by: AbstractBaseUser | None = None) -> Membership:
    if role not in Role.values:
        raise ValidationError(f"role must be one of {Role.values} (got {role!r})", field="role")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(campaign=campaign, user=user, role=role)
    except IntegrityError:
        raise Conflict(f"{user} already has the {role} role in campaign {campaign.pk}", field="role") from None
    audit_record(action="role.added", actor=changed_by, campaign_id=campaign.pk, object_type="user", object_id=user.pk,
                 details={"user": user.get_username(), "role": role})
    return membership


@transaction.atomic
def membership_remove(*, campaign: Campaign, user: AbstractBaseUser, role: str,
                      changed_by: AbstractBaseUser | None = None) -> None:
    """Remove a role. The last admin of a campaign cannot be removed (someone must be able to manage it).
    An annotator's leased slots go back to the pool; their judgments stay."""
    membership = Membership.objects.filter(campaign=campaign, user=user, role=role).first()
    if membership is None:
        raise NotFound(f"{user} has no {role} role in campaign {campaign.pk}")
    if role == Role.ADMIN and Membership.objects.filter(campaign=campaign, role=Role.ADMIN).count() == 1:
        raise Conflict("a campaign needs at least one admin: add another before removing this one", field="role")
    membership.delete()
    audit_record(action="role.removed", actor=changed_by, campaign_id=campaign.pk, object_type="user",
                 object_id=user.pk, details={"user": user.get_username(), "role": role})
    if role == Role.ANNOTATOR:
        Assignment.objects.filter(campaign=campaign, annotator=user, state=Assignment.State.LEASED).update(
            annotator=None, state=Assignment.State.AVAILABLE, lease_expires_at=None, leased_at=None, shown_order=[]
        )


@transaction.atomic
def membership_set_paused(*, campaign: Campaign, user: AbstractBaseUser, paused: bool, reason: str = "") -> Membership:
    membership = Membership.objects.filter(campaign=campaign, user=user, role=Role.ANNOTATOR).first()
    if membership is None:
        raise NotFound(f"{user} is not an annotator in campaign {campaign.pk}")
    membership.paused = paused
    membership.pause_reason = reason[:300] if paused else ""
    membership.save(update_fields=["paused", "pause_reason"])
    return membership


@transaction.atomic
def round_create(
    *, campaign: Campaign, name: str = "", target_judgments: int | None = None,
    purpose: str = Round.Purpose.COLLECT,
) -> Round:
    """Open the next round. Earlier rounds stay as they are (close them explicitly). An ``evaluation`` round
    holds held-out comparisons: imports never fall into it and training never reads it."""
    last = Round.objects.filter(campaign=campaign).order_by("-number").values_list("number", flat=True).first() or 0
    if target_judgments is not None and target_judgments < 1:
        raise ValidationError("target_judgments must be at least 1", field="target_judgments")
    return Round.objects.create(
        campaign=campaign, number=last + 1, name=name or f"Round {last + 1}", target_judgments=target_judgments,
        purpose=purpose,
    )


@transaction.atomic
def round_close(*, round: Round) -> Round:
    """Close a round: its items leave the queue; leases on them lapse. Closing twice is a no-op."""
    if round.status == Round.Status.CLOSED:
        return round
    round.status = Round.Status.CLOSED
    round.closed_at = timezone.now()
    round.save(update_fields=["status", "closed_at"])
    send_event_on_commit(campaign_id=round.campaign_id, type="round.closed", payload={"round": round.pk})
    return round


def round_current(*, campaign: Campaign) -> Round:
    """The newest open collection round, opening one if every such round is closed (evaluation rounds are
    never the current round: an import that names no round must not land in a held-out comparison)."""
    current = (Round.objects.filter(campaign=campaign, status=Round.Status.OPEN, purpose=Round.Purpose.COLLECT)
               .order_by("-number").first())
    return current or round_create(campaign=campaign)

