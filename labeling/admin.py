"""Django admin for every labeling model: read-mostly views for operators, with the joins each list needs."""
from django.contrib import admin

from .models import (
    Assignment,
    Campaign,
    ComparisonItem,
    ItemResponse,
    ItemSkip,
    Judgment,
    Membership,
    Prompt,
    Response,
    Round,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "overlap", "pairwise_enabled", "ranking_enabled", "created_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["campaign", "user", "role", "paused"]
    list_filter = ["role", "paused"]
    list_select_related = ["campaign", "user"]
    raw_id_fields = ["user", "campaign"]


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["campaign", "number", "name", "status", "target_judgments", "created_at"]
    list_filter = ["status"]
    list_select_related = ["campaign"]


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "kind", "split", "__str__"]
    list_filter = ["kind", "split"]
    list_select_related = ["campaign"]
    search_fields = ["text", "external_id"]
    raw_id_fields = ["campaign"]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["id", "model_name", "round", "__str__"]
    list_filter = ["model_name"]
    list_select_related = ["round"]
    raw_id_fields = ["prompt", "round"]
    search_fields = ["text"]


class ItemResponseInline(admin.TabularInline):
    model = ItemResponse
    extra = 0
    raw_id_fields = ["response"]


@admin.register(ComparisonItem)
class ComparisonItemAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "round", "kind", "status", "created_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["campaign", "round"]
    raw_id_fields = ["prompt", "round", "campaign"]
    inlines = [ItemResponseInline]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "annotator", "state", "lease_expires_at", "completed_at"]
    list_filter = ["state"]
    list_select_related = ["item", "annotator"]
    raw_id_fields = ["item", "annotator", "campaign", "round"]


@admin.register(ItemSkip)
class ItemSkipAdmin(admin.ModelAdmin):
    list_display = ["item", "annotator", "reason", "created_at"]
    list_select_related = ["item", "annotator"]
    raw_id_fields = ["item", "annotator"]


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "item", "annotator", "source", "kind", "winner", "tie", "both_bad", "strength", "created_at"]
    list_filter = ["source", "kind", "tie", "both_bad"]
    list_select_related = ["campaign", "item", "annotator", "winner"]
    raw_id_fields = ["item", "annotator", "assignment", "winner", "campaign", "round"]
