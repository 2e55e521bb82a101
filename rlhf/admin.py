from django.contrib import admin

from .models import (
    BaseModel,
    HumanEvaluation,
    LoopConfig,
    LoopIteration,
    PolicyVersion,
    ResponseProvenance,
    RewardModelVersion,
    TrainingRun,
)


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "source", "created_at")
    search_fields = ("name", "source")


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "campaign", "round", "progress_step", "progress_total", "loss", "created_at")
    list_filter = ("kind", "status")
    readonly_fields = ("artifacts", "metrics", "log_tail", "error", "celery_task_id", "data_sha256", "created_at",
                       "started_at", "finished_at")
    raw_id_fields = ("campaign", "round", "policy", "reward_model", "created_by")


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ("label", "campaign", "number", "base", "parent", "promoted", "created_at")
    list_filter = ("promoted",)
    raw_id_fields = ("campaign", "parent", "run", "round")


@admin.register(RewardModelVersion)
class RewardModelVersionAdmin(admin.ModelAdmin):
    list_display = ("label", "campaign", "number", "backbone", "created_at")
    raw_id_fields = ("campaign", "run", "round")


@admin.register(ResponseProvenance)
class ResponseProvenanceAdmin(admin.ModelAdmin):
    list_display = ("response", "policy", "sample_index", "reward")
    raw_id_fields = ("response", "policy", "run")


@admin.register(LoopConfig)
class LoopConfigAdmin(admin.ModelAdmin):
    list_display = ("campaign", "enabled", "algorithm", "base_model", "pairing", "gate", "current_policy")
    raw_id_fields = ("campaign", "current_policy")


@admin.register(LoopIteration)
class LoopIterationAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "round", "stage", "policy", "next_round", "created_at")
    list_filter = ("stage",)
    raw_id_fields = ("campaign", "round", "parent_policy", "reward_run", "train_run", "eval_run", "generate_run",
                     "policy", "next_round")


@admin.register(HumanEvaluation)
class HumanEvaluationAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "round", "model_a", "model_b", "status", "items_count", "created_at")
    list_filter = ("status",)
    readonly_fields = ("prompt_ids", "generation", "error", "created_at")
    raw_id_fields = ("campaign", "round", "model_a", "model_b", "run_a", "run_b", "created_by")
