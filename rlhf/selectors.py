"""Reads of the rlhf app, scoped to what the user may see (the labeling app's rules: admins and researchers of
a campaign read its runs and models; anything else is not found). Runs and models outside any campaign are
visible to site staff only."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from labeling.errors import NotFound
from labeling.models import Campaign
from labeling.selectors import READ_ROLES, user_roles

from .models import BaseModel, LoopConfig, LoopIteration, PolicyVersion, RewardModelVersion, TrainingRun


def _can_read(user: AbstractBaseUser, campaign: Campaign | None) -> bool:
    if user.is_staff:
        return True
    return campaign is not None and bool(user_roles(user=user, campaign=campaign) & READ_ROLES)


def run_list(*, campaign: Campaign, kind: str | None = None, status: str | None = None) -> QuerySet[TrainingRun]:
    qs = TrainingRun.objects.filter(campaign=campaign).select_related("policy", "reward_model", "round")
    if kind:
        qs = qs.filter(kind=kind)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-id")


def run_get(*, user: AbstractBaseUser, run_id: int) -> TrainingRun:
    run = TrainingRun.objects.select_related("campaign", "policy", "reward_model", "round").filter(pk=run_id).first()
    if run is None or not _can_read(user, run.campaign):
        raise NotFound(f"run {run_id} not found")
    return run


def policy_list(*, campaign: Campaign) -> QuerySet[PolicyVersion]:
    return PolicyVersion.objects.filter(campaign=campaign).select_related("base", "parent", "run", "round")


def policy_get(*, user: AbstractBaseUser, policy_id: int) -> PolicyVersion:
    policy = PolicyVersion.objects.select_related("campaign", "base", "parent", "run", "round").filter(
        pk=policy_id).first()
    if policy is None or not _can_read(user, policy.campaign):
        raise NotFound(f"policy {policy_id} not found")
    return policy


def reward_model_list(*, campaign: Campaign) -> QuerySet[RewardModelVersion]:
    return RewardModelVersion.objects.filter(campaign=campaign).select_related("backbone", "run", "round")


def loop_config_get(*, campaign: Campaign) -> LoopConfig | None:
    return LoopConfig.objects.select_related("base_model", "reward_backbone", "current_policy").filter(
        campaign=campaign).first()


def iteration_list(*, campaign: Campaign) -> QuerySet[LoopIteration]:
    return LoopIteration.objects.filter(campaign=campaign).order_by("-id")


def base_model_list() -> QuerySet[BaseModel]:
    return BaseModel.objects.all()
