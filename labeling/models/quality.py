"""Quality control records: scored gold judgments and low-effort / accuracy flags.

Neither ever deletes or changes a judgment: a flag informs weighting and review, a gold result records how a
judgment compared with the item's known answer when it was made (re-scored if the answer is corrected).
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class GoldResult(models.Model):
    """One judgment of a gold item, scored against the gold answer."""

    judgment = models.OneToOneField("labeling.Judgment", on_delete=models.CASCADE, related_name="gold_result")
    campaign = models.ForeignKey("labeling.Campaign", on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey("labeling.ComparisonItem", on_delete=models.CASCADE, related_name="gold_results")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    correct = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["campaign", "annotator", "id"], name="goldresult_annotator_idx")]

    def __str__(self) -> str:
        return f"gold {self.item_id} by {self.annotator_id}: {'right' if self.correct else 'wrong'}"


class QualityFlag(models.Model):
    class Kind(models.TextChoices):
        TOO_FAST = "too_fast", "Faster than the minimum time"
        SAME_POSITION = "same_position", "Always the same shown position"
        TIE_STREAK = "tie_streak", "A streak of ties"
        GOLD_ACCURACY = "gold_accuracy", "Gold accuracy below the threshold"

    campaign = models.ForeignKey("labeling.Campaign", on_delete=models.CASCADE, related_name="quality_flags")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    judgment = models.ForeignKey(
        "labeling.Judgment", null=True, blank=True, on_delete=models.SET_NULL, related_name="quality_flags"
    )
    kind = models.CharField(max_length=14, choices=Kind.choices)
    message = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["campaign", "annotator", "kind"], name="qualityflag_annotator_idx")]

    def __str__(self) -> str:
        return f"{self.kind} flag on {self.annotator_id}"
