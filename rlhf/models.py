"""The model registry and training orchestration: base models, policy and reward model versions, training
runs, the link from a generated response to the policy version that produced it, and each campaign's loop
configuration. This app may import ``labeling``; ``labeling`` never imports it.

Lineage: a PolicyVersion names its base model, its LoRA adapter folder, its parent version, the TrainingRun
that made it and the Round whose judgments it was trained on; the run names the data file (and its sha256) it
read. A ResponseProvenance row ties each generated ``labeling.Response`` to the policy version and generation
parameters that produced it.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models import Campaign, Response, Round


class BaseModel(models.Model):
    """A model the platform can load: a Hugging Face id, a local folder, or a shipped model
    (``builtin:smollm2-135m-instruct`` for policies, ``builtin:all-minilm-l6-v2`` for reward backbones)."""

    class Kind(models.TextChoices):
        POLICY = "policy", "Policy (causal LM)"
        REWARD = "reward", "Reward backbone (sequence classifier)"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=6, choices=Kind.choices, default=Kind.POLICY)
    source = models.CharField(max_length=1000, help_text="HF id, local path, or builtin:<name>.")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TrainingRun(models.Model):
    """One job: its spec, where it stands, what it produced. The worker writes progress as it goes; outputs
    (a PolicyVersion / RewardModelVersion) are registered in the same transaction that marks it succeeded."""

    class Kind(models.TextChoices):
        REWARD = "reward", "Reward model"
        DPO = "dpo", "DPO"
        GENERATE = "generate", "Generate"
        GRPO = "grpo", "GRPO"
        RLOO = "rloo", "RLOO"
        PPO = "ppo", "PPO"
        EVALUATE = "evaluate", "Evaluate"
        # The model lifecycle around the loop (rlhf.training's lifecycle jobs).
        PRETRAIN = "pretrain", "Pre-training from scratch"
        CPT = "cpt", "Continued pre-training"
        SFT = "sft", "Instruction tuning (SFT)"
        CLASSIFY = "classify", "Classification head"
        DISTILL = "distill", "Distillation"
        MERGE = "merge", "Merge adapters"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="runs")
    round = models.ForeignKey(
        Round, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs",
        help_text="The round whose judgments (training) or items (generation) this run is about.",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    spec = models.JSONField(default=dict, help_text="The job spec (rlhf.training.specs) as JSON.")
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.QUEUED)
    # Inputs, for lineage.
    policy = models.ForeignKey(
        "PolicyVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs_using",
        help_text="The policy version this run starts from (training) or samples from (generation).",
    )
    reward_model = models.ForeignKey(
        "RewardModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs_using"
    )
    data_path = models.CharField(max_length=1000, blank=True)
    data_sha256 = models.CharField(max_length=64, blank=True)
    options = models.JSONField(
        default=dict, blank=True,
        help_text="Platform-side settings outside the job spec (generation: target round, prompts, pairing).",
    )
    # Progress.
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    steps_per_s = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)
    # Results.
    metrics = models.JSONField(default=dict, blank=True)
    artifacts = models.JSONField(default=list, blank=True, help_text='[{"path", "bytes", "sha256"}, ...]')
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # Execution.
    celery_task_id = models.CharField(max_length=255, blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["campaign", "status"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.kind}, {self.status})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED


class PolicyVersion(models.Model):
    """A policy: a base model plus (except for version 0, the base itself) a LoRA adapter."""

    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="policy_versions"
    )
    base = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="policy_versions")
    number = models.PositiveIntegerField(default=0, help_text="0 is the base model itself.")
    label = models.CharField(max_length=200, unique=True, help_text="Stored as Response.model_name.")
    adapter_dir = models.CharField(max_length=1000, blank=True, help_text="LoRA adapter folder; blank: the base.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="policy_version"
    )
    round = models.ForeignKey(
        Round, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The round whose judgments trained it.",
    )
    promoted = models.BooleanField(default=False, help_text="Passed the gate: the loop generates from it.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Evaluation against its parent.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="policyversion_unique_number"),
        ]

    def __str__(self) -> str:
        return self.label


class RewardModelVersion(models.Model):
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="reward_models"
    )
    backbone = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="reward_versions")
    number = models.PositiveIntegerField(default=1)
    label = models.CharField(max_length=200, unique=True)
    adapter_dir = models.CharField(max_length=1000, blank=True)
    model_dir = models.CharField(max_length=1000, blank=True, help_text="Adapter merged into the backbone.")
    run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="reward_version"
    )
    round = models.ForeignKey(Round, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="rewardversion_unique_number"),
        ]

    def __str__(self) -> str:
        return self.label


class ResponseProvenance(models.Model):
    """Which policy version, with which generation parameters, produced a response."""

    response = models.OneToOneField(Response, on_delete=models.CASCADE, related_name="provenance")
    policy = models.ForeignKey(PolicyVersion, on_delete=models.CASCADE, related_name="responses")
    run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    generation_params = models.JSONField(default=dict, blank=True)
    sample_index = models.PositiveIntegerField(default=0)
    reward = models.FloatField(null=True, blank=True, help_text="Reward-model score at pairing time, if any.")

    def __str__(self) -> str:
        return f"response {self.response_id} from {self.policy_id}"


class LoopConfig(models.Model):
    """How a campaign runs in loop mode: round after round, judgments -> training -> a new policy -> the next
    round's items. ``train_params`` / ``reward_params`` override fields of the training job specs."""

    class Algorithm(models.TextChoices):
        DPO = "dpo", "DPO"
        GRPO = "grpo", "GRPO (reward model)"
        RLOO = "rloo", "RLOO (reward model)"
        PPO = "ppo", "PPO (reward model)"

    class Pairing(models.TextChoices):
        RANDOM = "random", "Random pairs"
        UNCERTAIN = "uncertain", "Pairs the reward model is least sure about"

    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="loop_config")
    enabled = models.BooleanField(default=False, help_text="Loop mode on.")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    reward_backbone = models.ForeignKey(BaseModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    algorithm = models.CharField(max_length=4, choices=Algorithm.choices, default=Algorithm.DPO)
    judgments_per_round = models.PositiveIntegerField(default=100)
    prompts_per_round = models.PositiveIntegerField(default=50, help_text="Prompts sampled per generated round.")
    responses_per_prompt = models.PositiveSmallIntegerField(default=2)
    generation = models.JSONField(
        default=dict, blank=True, help_text='{"temperature", "top_p", "max_new_tokens", "seed"}'
    )
    pairing = models.CharField(max_length=9, choices=Pairing.choices, default=Pairing.RANDOM)
    gate = models.BooleanField(default=True, help_text="Do not promote a policy that does not beat its parent.")
    train_params = models.JSONField(default=dict, blank=True)
    reward_params = models.JSONField(default=dict, blank=True)
    eval_prompts = models.PositiveIntegerField(default=32, help_text="Held-out prompts for the win-rate.")
    judge = models.JSONField(
        default=dict, blank=True,
        help_text='Optional simulated judge for evaluation, e.g. {"rule": "shorter"} (see rlhf.simulate).',
    )
    max_rounds = models.PositiveIntegerField(
        null=True, blank=True, help_text="The loop stops after this round: its judgments start no iteration."
    )
    current_policy = models.ForeignKey(
        PolicyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The policy the next round is generated from (rollback moves it).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"loop of {self.campaign}"

    @property
    def needs_reward_model(self) -> bool:
        return self.algorithm != self.Algorithm.DPO or self.pairing == self.Pairing.UNCERTAIN


class LoopIteration(models.Model):
    """One turn of the loop, keyed by the round whose judgments it consumes. ``stage`` is the next step to
    run; each step checks it, so a re-delivered task never does a step twice."""

    class Stage(models.TextChoices):
        DATA = "data", "Build training data"
        REWARD = "reward", "Train reward model"
        TRAIN = "train", "Train policy"
        EVALUATE = "evaluate", "Evaluate and gate"
        GENERATE = "generate", "Generate next round"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="loop_iterations")
    round = models.OneToOneField(Round, on_delete=models.CASCADE, related_name="loop_iteration")
    stage = models.CharField(max_length=8, choices=Stage.choices, default=Stage.DATA)
    data_path = models.CharField(max_length=1000, blank=True)
    data_sha256 = models.CharField(max_length=64, blank=True)
    snapshot_id = models.BigIntegerField(null=True, blank=True)
    pairs = models.PositiveIntegerField(default=0)
    parent_policy = models.ForeignKey(PolicyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reward_run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    train_run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    eval_run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    generate_run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    policy = models.ForeignKey(PolicyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    next_round = models.ForeignKey(Round, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(stage=""), name="loopiteration_stage_set"),
        ]

    def __str__(self) -> str:
        return f"loop iteration of round {self.round_id} ({self.stage})"


class HumanEvaluation(models.Model):
    """A human comparison of two model versions: a round of the campaign whose items each pair model A's and
    model B's response to one held-out prompt (same sampling parameters and seed for both), generated by one
    GENERATE run per side. A registered BaseModel takes part through its version-0 PolicyVersion, so every
    response has a ResponseProvenance naming the version that wrote it. The result is read from the round's
    judgments (``rlhf.services.human_eval.human_eval_result``)."""

    class Status(models.TextChoices):
        GENERATING = "generating", "Generating responses"
        READY = "ready", "Ready for judging"
        FAILED = "failed", "Failed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="human_evaluations")
    round = models.OneToOneField(Round, on_delete=models.CASCADE, related_name="human_evaluation")
    model_a = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="+")
    model_b = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="+",
                                help_text="The win-rate is B's over A.")
    run_a = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run_b = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    prompts_count = models.PositiveIntegerField(default=0)
    prompt_ids = models.JSONField(default=list, blank=True, help_text="The prompts, in generation order.")
    generation = models.JSONField(default=dict, blank=True, help_text="Sampling parameters shared by A and B.")
    items_count = models.PositiveIntegerField(default=0)
    identical = models.PositiveIntegerField(
        default=0, help_text="Prompts where A and B wrote the same text: no item (nothing to compare)."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.GENERATING)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"human evaluation {self.pk}: {self.model_b_id} vs {self.model_a_id}"
