"""Deleting data: a prompt (with its responses, items, slots and judgments), or everything one annotator
contributed to a campaign (judgments, skips; their slots go back to the pool). Each deletion is one audit
event, and every snapshot that held deleted judgments is marked: ``Snapshot.data_deleted_at`` is set and the
event's id appended to ``Snapshot.deletions``. Training runs are marked through their snapshot: a run whose
snapshot (``rlhf.TrainingRun.snapshot_id``) has ``data_deleted_at`` set used data that has since been deleted;
``selectors_governance.snapshot_ids_with_deleted_data`` lists those snapshots for the RLHF side (this app
never imports it)."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from ..models import (
    Assignment,
    AuditEvent,
    Campaign,
    ComparisonItem,
    ItemSkip,
    Judgment,
    Prompt,
    Response,
    Snapshot,
    SnapshotMember,
)
from .audit import audit_record


def _mark_snapshots(snapshot_ids: set[int], event: AuditEvent) -> list[int]:
    """Mark the snapshots as holding deleted data. Row by row: each appends to its own list of events."""
    now = timezone.now()
    for snapshot in Snapshot.objects.filter(pk__in=snapshot_ids).order_by("pk"):
        snapshot.deletions = [*snapshot.deletions, event.pk]
        snapshot.data_deleted_at = snapshot.data_deleted_at or now
        snapshot.save(update_fields=["deletions", "data_deleted_at"])
    return sorted(snapshot_ids)


@transaction.atomic
def prompt_delete(*, prompt: Prompt, deleted_by: AbstractBaseUser | None, reason: str = "") -> AuditEvent:
    """Delete a prompt and everything hanging off it; record it and mark the snapshots that held it."""
    judgments = set(Judgment.objects.filter(item__prompt=prompt).values_list("pk", flat=True))
    counts = {"prompts": 1, "responses": Response.objects.filter(prompt=prompt).count(),
              "items": ComparisonItem.objects.filter(prompt=prompt).count(), "judgments": len(judgments)}
    snapshot_ids = set(SnapshotMember.objects.filter(prompt_id=prompt.pk).values_list("snapshot_id", flat=True))
    campaign_id, prompt_id = prompt.campaign_id, prompt.pk
    prompt.delete()
    event = audit_record(action="data.deleted", actor=deleted_by, campaign_id=campaign_id, object_type="prompt",
                         object_id=prompt_id, counts=counts, details={"reason": reason})
    event.details = {**event.details, "snapshots_marked": _mark_snapshots(snapshot_ids, event)}
    event.save(update_fields=["details"])
    return event


@transaction.atomic
def annotator_data_delete(*, campaign: Campaign, annotator: AbstractBaseUser, deleted_by: AbstractBaseUser | None,
                          reason: str = "") -> AuditEvent:
    """Delete every judgment and skip ``annotator`` made in ``campaign`` and give their slots back to the
    pool (items they completed reopen); record it and mark the snapshots that held their judgments."""
    judgments = Judgment.objects.filter(campaign=campaign, annotator=annotator)
    snapshot_ids = set(SnapshotMember.objects.filter(snapshot__campaign=campaign, annotator_id=annotator.pk)
                       .values_list("snapshot_id", flat=True))
    slots = Assignment.objects.filter(campaign=campaign, annotator=annotator)
    items = set(slots.values_list("item_id", flat=True))
    counts = {"judgments": judgments.count(),
              "skips": ItemSkip.objects.filter(item__campaign=campaign, annotator=annotator).count(),
              "slots_freed": slots.count()}
    judgments.delete()
    ItemSkip.objects.filter(item__campaign=campaign, annotator=annotator).delete()
    slots.update(annotator=None, state=Assignment.State.AVAILABLE, lease_expires_at=None, leased_at=None,
                 completed_at=None, shown_order=[])
    ComparisonItem.objects.filter(pk__in=items, status=ComparisonItem.Status.COMPLETE).update(
        status=ComparisonItem.Status.OPEN)
    event = audit_record(action="data.deleted", actor=deleted_by, campaign_id=campaign.pk, object_type="annotator",
                         object_id=annotator.pk, counts=counts, details={"reason": reason})
    event.details = {**event.details, "snapshots_marked": _mark_snapshots(snapshot_ids, event)}
    event.save(update_fields=["details"])
    return event
