from __future__ import annotations

from rest_framework import serializers

from ..models import (
    BaseModel,
    HumanEvaluation,
    LoopConfig,
    LoopIteration,
    PolicyVersion,
    RewardModelVersion,
    TrainingRun,
)


class BaseModelOut(serializers.ModelSerializer):
    class Meta:
        model = BaseModel
        fields = ["id", "name", "kind", "source", "notes", "created_at"]


class BaseModelIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    source = serializers.CharField(max_length=1000)
    kind = serializers.ChoiceField(choices=BaseModel.Kind.choices, default=BaseModel.Kind.POLICY)


class RunOut(serializers.ModelSerializer):
    class Meta:
        model = TrainingRun
        fields = ["id", "campaign", "round", "kind", "status", "spec", "options", "policy", "reward_model",
                  "data_path", "data_sha256", "progress_step", "progress_total", "loss", "steps_per_s", "eta_s",
                  "metrics", "artifacts", "log_tail", "error", "celery_task_id", "cancel_requested", "attempts",
                  "created_at", "started_at", "finished_at", "updated_at"]


class RunListOut(serializers.ModelSerializer):
    class Meta:
        model = TrainingRun
        fields = ["id", "round", "kind", "status", "policy", "progress_step", "progress_total", "loss",
                  "created_at", "finished_at"]


class RunProgressOut(serializers.ModelSerializer):
    class Meta:
        model = TrainingRun
        fields = ["id", "status", "progress_step", "progress_total", "loss", "steps_per_s", "eta_s",
                  "cancel_requested", "updated_at"]


class RunIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[k for k in TrainingRun.Kind.values if k != "evaluate"])
    spec = serializers.DictField()
    policy = serializers.IntegerField(required=False, allow_null=True)


class PolicyOut(serializers.ModelSerializer):
    base = serializers.CharField(source="base.name")

    class Meta:
        model = PolicyVersion
        fields = ["id", "label", "number", "base", "adapter_dir", "parent", "run", "round", "promoted", "metrics",
                  "created_at"]


class RewardModelOut(serializers.ModelSerializer):
    backbone = serializers.CharField(source="backbone.name")

    class Meta:
        model = RewardModelVersion
        fields = ["id", "label", "number", "backbone", "model_dir", "run", "round", "metrics", "created_at"]


class LoopConfigOut(serializers.ModelSerializer):
    class Meta:
        model = LoopConfig
        fields = ["enabled", "base_model", "reward_backbone", "algorithm", "judgments_per_round",
                  "prompts_per_round", "responses_per_prompt", "generation", "pairing", "gate", "train_params",
                  "reward_params", "eval_prompts", "judge", "max_rounds", "current_policy", "updated_at"]


class LoopConfigIn(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    base_model = serializers.IntegerField(required=False)
    reward_backbone = serializers.IntegerField(required=False, allow_null=True)
    algorithm = serializers.ChoiceField(choices=LoopConfig.Algorithm.choices, required=False)
    judgments_per_round = serializers.IntegerField(min_value=1, required=False)
    prompts_per_round = serializers.IntegerField(min_value=1, required=False)
    responses_per_prompt = serializers.IntegerField(min_value=2, max_value=16, required=False)
    generation = serializers.DictField(required=False)
    pairing = serializers.ChoiceField(choices=LoopConfig.Pairing.choices, required=False)
    gate = serializers.BooleanField(required=False)
    train_params = serializers.DictField(required=False)
    reward_params = serializers.DictField(required=False)
    eval_prompts = serializers.IntegerField(min_value=1, required=False)
    judge = serializers.DictField(required=False)
    max_rounds = serializers.IntegerField(min_value=1, required=False, allow_null=True)


class IterationOut(serializers.ModelSerializer):
    class Meta:
        model = LoopIteration
        fields = ["id", "round", "stage", "pairs", "data_sha256", "parent_policy", "reward_run", "train_run",
                  "eval_run", "generate_run", "policy", "next_round", "error", "created_at", "updated_at"]


class StepIn(serializers.Serializer):
    round = serializers.IntegerField(required=False)
    iteration = serializers.IntegerField(required=False)


class HumanEvalIn(serializers.Serializer):
    """Each side is a policy version of the campaign (``model_a``) or a registered base model
    (``base_model_a``): exactly one of the two."""

    model_a = serializers.IntegerField(required=False, allow_null=True)
    base_model_a = serializers.IntegerField(required=False, allow_null=True)
    model_b = serializers.IntegerField(required=False, allow_null=True)
    base_model_b = serializers.IntegerField(required=False, allow_null=True)
    prompt_ids = serializers.ListField(child=serializers.IntegerField(), required=False, allow_empty=False,
                                       max_length=5000)
    n_prompts = serializers.IntegerField(required=False, min_value=1)
    seed = serializers.IntegerField(required=False, min_value=0, default=0)
    generation = serializers.DictField(required=False)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate(self, attrs: dict) -> dict:
        for side in ("a", "b"):
            given = [f for f in (f"model_{side}", f"base_model_{side}") if attrs.get(f) is not None]
            if len(given) != 1:
                raise serializers.ValidationError(
                    {f"model_{side}": f"give exactly one of model_{side} (policy version id) or base_model_{side}"})
        if attrs.get("prompt_ids") and attrs.get("n_prompts"):
            raise serializers.ValidationError({"prompt_ids": "give prompt_ids or n_prompts, not both"})
        return attrs


class HumanEvalOut(serializers.ModelSerializer):
    model_a_label = serializers.CharField(source="model_a.label")
    model_b_label = serializers.CharField(source="model_b.label")

    class Meta:
        model = HumanEvaluation
        fields = ["id", "campaign", "round", "model_a", "model_a_label", "model_b", "model_b_label", "run_a",
                  "run_b", "prompts_count", "items_count", "identical", "generation", "status", "error",
                  "created_at"]


class HumanEvalDetailOut(HumanEvalOut):
    result = serializers.SerializerMethodField()

    class Meta(HumanEvalOut.Meta):
        fields = [*HumanEvalOut.Meta.fields, "result"]

    def get_result(self, obj) -> dict:
        return self.context["result"]
