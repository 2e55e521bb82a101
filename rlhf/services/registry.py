"""The model registry: base models, policy versions, reward model versions, rollback."""
from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from labeling.errors import Conflict, ValidationError
from labeling.events import send_event_on_commit
from labeling.models import Campaign

from ..models import BaseModel, LoopConfig, PolicyVersion, RewardModelVersion, TrainingRun

BUILTIN_POLICY = "builtin:smollm2-135m-instruct"
BUILTIN_REWARD = "builtin:all-minilm-l6-v2"


@transaction.atomic
def base_model_get_or_create(*, name: str, source: str, kind: str = BaseModel.Kind.POLICY) -> BaseModel:
    """A base model by name; created on first use. The same name with another source is a conflict."""
    if not source.strip():
        raise ValidationError("source must not be empty", field="source")
    if kind not in BaseModel.Kind.values:
        raise ValidationError(f"kind must be one of {BaseModel.Kind.values}", field="kind")
    model, created = BaseModel.objects.get_or_create(name=name, defaults={"source": source.strip(), "kind": kind})
    if not created and model.source != source.strip():
        raise Conflict(f"base model {name!r} already points at {model.source!r}", field="source")
    return model


def _label(campaign: Campaign | None, prefix: str, number: int, run: TrainingRun | None) -> str:
    if campaign is None:
        return f"{prefix}-run{run.pk}" if run else f"{prefix}-{number}"
    return f"c{campaign.pk}-{prefix}-v{number}"


@transaction.atomic
def policy_base_version(*, campaign: Campaign | None, base: BaseModel) -> PolicyVersion:
    """Version 0 of a campaign's policy: the base model itself, no adapter. Promoted by definition."""
    existing = PolicyVersion.objects.filter(campaign=campaign, number=0).first()
    if existing is not None:
        return existing
    label = _label(campaign, "policy", 0, None) if campaign else f"base-{base.name}"
    version, _ = PolicyVersion.objects.get_or_create(
        label=label, defaults={"campaign": campaign, "base": base, "number": 0, "promoted": True}
    )
    return version


def _base_for(source: str, kind: str) -> BaseModel:
    found = BaseModel.objects.filter(source=source, kind=kind).order_by("id").first()
    return found or BaseModel.objects.create(name=f"{kind}:{source}"[:200], source=source, kind=kind)


# Lifecycle jobs whose result is a whole model folder (``model_dir`` in their metrics): it becomes a BaseModel
# that campaigns and later jobs can start from. Adapter-only results stay artifacts of the run.
MODEL_PRODUCING_KINDS = {
    TrainingRun.Kind.PRETRAIN: BaseModel.Kind.POLICY,
    TrainingRun.Kind.CPT: BaseModel.Kind.POLICY,
    TrainingRun.Kind.SFT: BaseModel.Kind.POLICY,
    TrainingRun.Kind.DISTILL: BaseModel.Kind.POLICY,
    TrainingRun.Kind.MERGE: BaseModel.Kind.POLICY,
    TrainingRun.Kind.CLASSIFY: BaseModel.Kind.REWARD,
}


def _register_model_folder(run: TrainingRun) -> None:
    model_dir = (run.metrics or {}).get("model_dir")
    if not model_dir:
        return
    base = BaseModel.objects.create(name=f"run{run.pk}-{run.kind}", source=str(model_dir), kind=MODEL_PRODUCING_KINDS[run.kind])
    run.metrics = {**run.metrics, "base_model": base.pk}
    run.save(update_fields=["metrics"])


def _human_ceiling(run: TrainingRun) -> dict | None:
    """How often people agree on the data the reward model learned from: its held-out accuracy is read against
    this ceiling, never alone (published human agreement on pairwise preference is only 63-77%)."""
    if run.campaign is None:
        return None
    from labeling.selectors_quality import agreement_report

    report = agreement_report(campaign=run.campaign, round_id=run.round_id, n_boot=100)
    outcome = report["outcome"]
    return {
        "round": run.round_id,
        "items_with_overlap": report["items_with_overlap"],
        "percent_agreement": outcome.get("percent_agreement"),
        "krippendorff_alpha_nominal": outcome.get("krippendorff_alpha_nominal"),
    }


def register_outputs(*, run: TrainingRun) -> None:
    """Called inside the transaction that marks ``run`` succeeded (``runs.run_succeed``)."""
    from .runs import POLICY_KINDS, run_dir

    if run.kind in MODEL_PRODUCING_KINDS:
        _register_model_folder(run)
        return

    if run.kind == TrainingRun.Kind.REWARD:
        backbone = _base_for(run.spec["model"], BaseModel.Kind.REWARD)
        number = (RewardModelVersion.objects.filter(campaign=run.campaign).aggregate(n=Max("number"))["n"] or 0) + 1
        RewardModelVersion.objects.create(
            campaign=run.campaign, backbone=backbone, number=number,
            label=_label(run.campaign, "reward", number, run) if run.campaign else f"reward-run{run.pk}",
            adapter_dir=str(run_dir(run.pk) / "adapter"), model_dir=str(run_dir(run.pk) / "model"),
            run=run, round=run.round, metrics={**run.metrics, "human_agreement": _human_ceiling(run)},
        )
    elif run.kind == TrainingRun.Kind.GENERATE:
        from .generation import register_generation

        report = register_generation(run=run)
        if report:
            run.metrics = {**run.metrics, "items": report}
            run.save(update_fields=["metrics"])
    elif run.kind in POLICY_KINDS:
        parent = run.policy
        base = parent.base if parent else _base_for(run.spec["model"], BaseModel.Kind.POLICY)
        if run.campaign is not None:
            number = (PolicyVersion.objects.filter(campaign=run.campaign).aggregate(n=Max("number"))["n"] or 0) + 1
            label = _label(run.campaign, "policy", number, run)
        else:
            number, label = run.pk, f"policy-run{run.pk}"
        PolicyVersion.objects.create(
            campaign=run.campaign, base=base, number=number, label=label,
            adapter_dir=str(run_dir(run.pk) / "adapter"), parent=parent, run=run, round=run.round,
            promoted=False, metrics={"training": run.metrics},
        )


def policy_spec_fields(policy: PolicyVersion) -> dict:
    """``model`` / ``adapter`` fields of a job spec that loads this policy."""
    return {"model": policy.base.source, "adapter": policy.adapter_dir or None}


@transaction.atomic
def policy_promote(*, policy: PolicyVersion, metrics: dict | None = None, promoted: bool = True) -> PolicyVersion:
    policy.promoted = promoted
    if metrics is not None:
        policy.metrics = {**policy.metrics, "evaluation": metrics}
    policy.save(update_fields=["promoted", "metrics"])
    if promoted and policy.campaign_id is not None:
        LoopConfig.objects.filter(campaign_id=policy.campaign_id).update(current_policy=policy)
    return policy


@transaction.atomic
def policy_rollback(*, campaign: Campaign, policy: PolicyVersion) -> LoopConfig:
    """Make ``policy`` (an earlier version of this campaign) the one the loop generates from and trains on
    next. Later versions stay in the registry for the record."""
    if policy.campaign_id != campaign.pk:
        raise ValidationError(f"policy {policy.pk} does not belong to campaign {campaign.pk}", field="policy")
    config = LoopConfig.objects.select_for_update().filter(campaign=campaign).first()
    if config is None:
        raise Conflict(f"campaign {campaign.pk} has no loop configuration", field="policy")
    config.current_policy = policy
    config.save(update_fields=["current_policy", "updated_at"])
    send_event_on_commit(campaign_id=campaign.pk, type="loop.rollback", payload={"policy": policy.pk})
    return config


def policy_lineage(*, policy: PolicyVersion) -> list[PolicyVersion]:
    """The policy and its ancestors, newest first."""
    chain, seen = [], set()
    node = policy
    while node is not None and node.pk not in seen:
        chain.append(node)
        seen.add(node.pk)
        node = node.parent
    return chain
