"""Every row lock the rlhf app takes, named, in one place."""
from __future__ import annotations

from django.db.models import QuerySet

from .models import LoopIteration, TrainingRun


def run_lock(run_id: int) -> QuerySet[TrainingRun]:
    """Lock one run while changing its status: a worker starting it, a cancel and a re-delivered task see
    one another's writes, never a stale copy."""
    return TrainingRun.objects.select_for_update(of=("self",)).filter(pk=run_id)


def iteration_lock(iteration_id: int) -> QuerySet[LoopIteration]:
    """Lock a loop iteration while a step claims it: two deliveries of one step never both run it."""
    return LoopIteration.objects.select_for_update(of=("self",)).filter(pk=iteration_id)
