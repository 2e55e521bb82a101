"""Celery tasks. They take ids, never objects; they are idempotent (a re-delivered task for a finished run or
a finished step does nothing), acknowledged late (``CELERY_TASK_ACKS_LATE``: a worker that dies mid-task leaves
the message to be delivered again, and the run resumes from its newest checkpoint; a delivery while another live
worker still runs it waits for that worker, then does nothing), and cancellable (a run's progress
callback sees ``cancel_requested`` and stops the job at its next step).

Names matter: ``rlhf.tasks.gpu_*`` go to the ``gpu`` queue (``CELERY_TASK_ROUTES``), the rest to ``cpu``.
"""
from __future__ import annotations

from celery import shared_task


@shared_task(name="rlhf.tasks.gpu_run", bind=True, acks_late=True)
def gpu_run(self, run_id: int) -> str:
    """Run one TrainingRun (any kind) to the end; a run left running by a dead worker resumes from its newest
    checkpoint (``services.execution``)."""
    from .services.execution import execute_run

    run = execute_run(run_id, task_id=self.request.id or "")
    return run.status if run else "missing"


@shared_task(name="rlhf.tasks.loop_round_check", acks_late=True)
def loop_round_check(round_id: int) -> bool:
    """After a judgment: close the round if it reached its target (which starts the loop iteration)."""
    from .services.loop import loop_round_check as check

    return check(round_id=round_id)


@shared_task(name="rlhf.tasks.loop_iteration_start", acks_late=True)
def loop_iteration_start(round_id: int) -> int | None:
    from .services.loop import iteration_start

    it = iteration_start(round_id=round_id)
    return it.pk if it else None


@shared_task(name="rlhf.tasks.loop_data", acks_late=True)
def loop_data(iteration_id: int) -> str | None:
    """Loop step 1 (CPU): the training data file(s) from the closed round's judgments."""
    from .services.loop import step_data

    it = step_data(iteration_id=iteration_id)
    return it.stage if it else None


@shared_task(name="rlhf.tasks.gpu_loop_step", acks_late=True)
def gpu_loop_step(iteration_id: int, stage: str) -> str | None:
    """Loop steps on the GPU queue: reward, train, evaluate, generate. A step whose stage has moved on is a
    no-op."""
    from .services.loop import STEPS

    it = STEPS[stage](iteration_id=iteration_id)
    return it.stage if it else None


@shared_task(name="rlhf.tasks.gpu_human_eval", acks_late=True)
def gpu_human_eval(human_eval_id: int) -> str | None:
    """A human evaluation's two generate runs (GPU queue), then its comparison items. A re-delivered task
    skips what is done."""
    from .services.human_eval import human_eval_generate

    he = human_eval_generate(human_eval_id=human_eval_id)
    return he.status if he else None
