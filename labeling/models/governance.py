"""Data governance: immutable snapshots (with their member judgments and prompt splits), export jobs, the
per-campaign PII policy and the audit log.

A snapshot never changes once written, with one documented exception: when data it holds is deleted
(``services.deletion``), ``data_deleted_at`` and ``deletions`` record it. Training runs reference snapshots
from the RLHF side (this app never imports it): a run whose ``snapshot.data_deleted_at`` is set was trained
on data that has since been deleted, which is how the runs that used deleted data are found.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Snapshot(models.Model):
    campaign = models.ForeignKey("labeling.Campaign", on_delete=models.CASCADE, related_name="snapshots")
    content_hash = models.CharField(max_length=64, db_index=True, help_text="sha256 of the canonical serialisation.")
    manifest = models.JSONField(help_text="Campaign, rounds, filters, counts, aggregation, split rule, PII policy.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    records_count = models.PositiveIntegerField(default=0)
    # The one mutable part: set when data the snapshot holds is deleted (it then no longer reproduces).
    data_deleted_at = models.DateTimeField(null=True, blank=True)
    deletions = models.JSONField(default=list, blank=True, help_text="Audit event ids of deletions that hit it.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["campaign", "content_hash"])]

    def __str__(self) -> str:
        return f"snapshot {self.pk} ({self.content_hash[:12]})"


class SnapshotMember(models.Model):
    """One judgment in a snapshot with its prompt's split. Ids are plain integers, not foreign keys: a
    deleted judgment must leave its trace here so the deletion can be matched to the snapshots that held it."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="members")
    judgment_id = models.BigIntegerField()
    prompt_id = models.BigIntegerField()
    # The judgment's item: exports select the snapshot's items and responses by it (through the judgments
    # it cost a third of an export's database time). Null only on members written before it existed whose
    # judgment had been deleted by then.
    item_id = models.BigIntegerField(null=True, blank=True)
    annotator_id = models.BigIntegerField(null=True, blank=True)
    split = models.CharField(max_length=10)

    class Meta:
        ordering = ["snapshot_id", "judgment_id"]
        constraints = [models.UniqueConstraint(fields=["snapshot", "judgment_id"], name="snapshotmember_unique")]
        indexes = [
            models.Index(fields=["judgment_id"]),
            models.Index(fields=["prompt_id"]),
            models.Index(fields=["annotator_id"]),
            models.Index(fields=["snapshot", "item_id"], name="snapshotmember_items"),
        ]

    def __str__(self) -> str:
        return f"judgment {self.judgment_id} in snapshot {self.snapshot_id} ({self.split})"


class PiiPolicy(models.Model):
    """What to do with personal data found in a campaign's texts: ``default`` action, ``kinds`` overriding it
    per kind (allow / mask / pseudonymise / reject). ``key`` keys the pseudonyms: the same value always maps
    to the same pseudonym within a campaign, and nobody without the key can recompute it."""

    campaign = models.OneToOneField("labeling.Campaign", on_delete=models.CASCADE, related_name="pii_policy")
    default = models.CharField(max_length=12, default="allow")
    kinds = models.JSONField(default=dict, blank=True)
    names = models.BooleanField(default=True, help_text="Run the person-name model (slower than the rules).")
    key = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"PII policy of campaign {self.campaign_id}: {self.default} {self.kinds}"


class ExportJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    campaign = models.ForeignKey("labeling.Campaign", on_delete=models.CASCADE, related_name="export_jobs")
    # Null while queued without a snapshot: the worker builds one (minutes on a large campaign, too long for the
    # request) before writing the file. A done export always has one (constraint below).
    snapshot = models.ForeignKey(Snapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="export_jobs")
    format = models.CharField(max_length=40)
    options = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    file_name = models.CharField(max_length=300, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    records = models.PositiveIntegerField(null=True, blank=True)
    pii_report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(status="done") | models.Q(snapshot__isnull=False),
                                   name="exportjob_done_has_snapshot"),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.format}, {self.status})"


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        CAMPAIGN_CREATED = "campaign.created", "Campaign created"
        ROLE_ADDED = "role.added", "Role added"
        ROLE_REMOVED = "role.removed", "Role removed"
        IMPORTED = "data.imported", "Data imported"
        EXPORTED = "data.exported", "Data exported"
        SNAPSHOT = "snapshot.created", "Snapshot created"
        DELETED = "data.deleted", "Data deleted"
        POLICY = "pii.policy", "PII policy changed"

    action = models.CharField(max_length=20, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True, help_text="Kept when the user is gone.")
    # Plain integer: the trail of a deleted campaign must outlive it.
    campaign_id = models.BigIntegerField(null=True, blank=True)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["campaign_id", "action", "created_at"]), models.Index(fields=["actor", "created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.object_type} {self.object_id}"
