"""Input serializers check shape and types; output serializers render. Neither holds logic."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from ..models import Assignment, Campaign, ComparisonItem, Judgment, Membership, Prompt, Role, Round
from ..rendering import render_markdown


# --- Output ---------------------------------------------------------------------------------------------
class CampaignOut(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = [
            "id", "name", "guidelines", "overlap", "pairwise_enabled", "allow_tie", "allow_both_bad",
            "strength_enabled", "ranking_enabled", "rationale", "lease_seconds", "status", "created_at", "updated_at",
        ]


class MembershipOut(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    user_id = serializers.IntegerField()

    class Meta:
        model = Membership
        fields = ["user_id", "username", "role", "paused", "pause_reason", "created_at"]


class RoundOut(serializers.ModelSerializer):
    items_count = serializers.IntegerField(read_only=True, required=False)
    judgments_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Round
        fields = ["id", "number", "name", "status", "target_judgments", "created_at", "closed_at", "items_count", "judgments_count"]


class PromptOut(serializers.ModelSerializer):
    class Meta:
        model = Prompt
        fields = ["id", "kind", "text", "messages", "metadata", "split", "external_id", "created_at"]


class ResponseBrief(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    model_name = serializers.CharField()


class ItemOut(serializers.ModelSerializer):
    prompt = PromptOut()
    responses = serializers.SerializerMethodField()
    judgments_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = ComparisonItem
        fields = ["id", "kind", "status", "round_id", "prompt", "responses", "metadata", "judgments_count", "created_at"]

    def get_responses(self, item) -> list[dict]:
        return ResponseBrief([link.response for link in item.item_responses.all()], many=True).data


class ShownResponse(serializers.Serializer):
    """A response as the annotator sees it: no model name (it would bias the judgment)."""

    id = serializers.IntegerField()
    text = serializers.CharField()


class AssignmentOut(serializers.Serializer):
    id = serializers.IntegerField()
    item_id = serializers.IntegerField()
    kind = serializers.CharField()
    lease_expires_at = serializers.DateTimeField()
    prompt = serializers.DictField()
    responses = ShownResponse(many=True)


class JudgmentOut(serializers.ModelSerializer):
    annotator = serializers.SerializerMethodField()

    class Meta:
        model = Judgment
        fields = [
            "id", "item_id", "assignment_id", "round_id", "annotator", "source", "source_name", "kind", "winner_id",
            "tie", "both_bad", "strength", "ranking", "rationale", "time_spent_ms", "shown_order", "client_id",
            "created_at",
        ]

    def get_annotator(self, judgment) -> str | None:
        return judgment.annotator.username if judgment.annotator_id else None


# --- Input ----------------------------------------------------------------------------------------------
class CampaignIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    guidelines = serializers.CharField(required=False, allow_blank=True, max_length=100_000)
    overlap = serializers.IntegerField(required=False, min_value=1, max_value=50)
    pairwise_enabled = serializers.BooleanField(required=False)
    allow_tie = serializers.BooleanField(required=False)
    allow_both_bad = serializers.BooleanField(required=False)
    strength_enabled = serializers.BooleanField(required=False)
    ranking_enabled = serializers.BooleanField(required=False)
    rationale = serializers.ChoiceField(choices=Campaign.Rationale.choices, required=False)
    lease_seconds = serializers.IntegerField(required=False, min_value=30, max_value=86_400)
    status = serializers.ChoiceField(choices=Campaign.Status.choices, required=False)


class CampaignPatchIn(CampaignIn):
    name = serializers.CharField(max_length=200, required=False)


class MembershipIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)

    def validate_username(self, value: str):
        user = get_user_model().objects.filter(username=value).first()
        if user is None:
            raise serializers.ValidationError(f"no user named {value!r}")
        return user


class PauseIn(serializers.Serializer):
    paused = serializers.BooleanField()
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class RoundIn(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    target_judgments = serializers.IntegerField(required=False, min_value=1, allow_null=True, default=None)


class SubmitIn(serializers.Serializer):
    client_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    winner = serializers.IntegerField(required=False, allow_null=True, default=None)
    tie = serializers.BooleanField(required=False, default=False)
    both_bad = serializers.BooleanField(required=False, default=False)
    strength = serializers.IntegerField(required=False, allow_null=True, default=None)
    ranking = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), allow_empty=False),
        required=False,
        allow_null=True,
        default=None,
    )
    rationale = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, default=None)


class QueueNextIn(serializers.Serializer):
    exclude = serializers.ListField(
        child=serializers.IntegerField(), required=False, default=list, max_length=10,
        help_text="Slots the client already shows: pass them to prefetch the next item.",
    )


class SkipIn(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class JudgmentFilterIn(serializers.Serializer):
    round = serializers.IntegerField(required=False)
    annotator = serializers.IntegerField(required=False)
    kind = serializers.ChoiceField(choices=Judgment.Kind.choices, required=False)
    source = serializers.ChoiceField(choices=Judgment.Source.choices, required=False)


class ItemFilterIn(serializers.Serializer):
    round = serializers.IntegerField(required=False)
    status = serializers.ChoiceField(choices=ComparisonItem.Status.choices, required=False)


def assignment_payload(assignment: Assignment) -> dict:
    """The annotator's view of a slot: the prompt and the responses in the order this slot shows them. Each
    text comes with ``html``: its Markdown rendered and sanitized server-side (``labeling.rendering``), the
    only markup a browser may insert."""
    item = assignment.item
    prompt = item.prompt
    texts = dict(item.responses.values_list("id", "text"))
    messages = [
        {**m, "html": render_markdown(m.get("content", ""))} if isinstance(m, dict) else m for m in prompt.messages
    ]
    return {
        "id": assignment.pk,
        "item_id": item.pk,
        "kind": item.kind,
        "lease_expires_at": assignment.lease_expires_at,
        "prompt": {"kind": prompt.kind, "text": prompt.text, "html": render_markdown(prompt.text), "messages": messages},
        "responses": [{"id": rid, "text": texts[rid], "html": render_markdown(texts[rid])} for rid in assignment.shown_order],
    }
