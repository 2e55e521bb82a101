"""Running a TrainingRun in the worker process: claim it, run the job with a progress callback that writes
progress and honours cancellation, then finish it (success registers its outputs atomically)."""
from __future__ import annotations

import logging
import time
import traceback

from ..models import TrainingRun
from .runs import RunCancelled, run_fail, run_record_progress, run_start, run_succeed

log = logging.getLogger(__name__)

# Progress rows are written at most this often (the last step is always written); a cancel is seen within it.
PROGRESS_INTERVAL_S = 0.5


def _job(run: TrainingRun):
    if run.kind == TrainingRun.Kind.EVALUATE:
        from ..evaluation import run_evaluation

        return lambda progress: run_evaluation(run.spec, progress)
    from rlhf.training import run_job
    from rlhf.training.specs import spec_from_dict

    spec = spec_from_dict(run.spec)
    return lambda progress: run_job(spec, progress)


def execute_run(run_id: int, task_id: str = "") -> TrainingRun | None:
    """Run ``run_id`` to the end in this process. Idempotent: a finished run is returned untouched."""
    run = run_start(run_id=run_id, task_id=task_id)
    if run is None:
        return TrainingRun.objects.filter(pk=run_id).first()
    last = {"t": 0.0}

    def progress(record: dict) -> None:
        now = time.monotonic()
        final = record.get("total") and record.get("step") == record.get("total")
        if now - last["t"] < PROGRESS_INTERVAL_S and not final:
            return
        last["t"] = now
        if run_record_progress(run_id=run_id, record=record):
            raise RunCancelled(f"run {run_id} cancelled at step {record.get('step')}")

    try:
        job = _job(run)
        metrics = job(progress)
        if run.kind == TrainingRun.Kind.GENERATE:
            from .generation import score_generations

            score_generations(run=run)
    except RunCancelled as exc:
        log.info("%s", exc)
        run_fail(run_id=run_id, error=str(exc), cancelled=True)
    except Exception:  # noqa: BLE001 - the run records any failure; the task itself succeeds
        log.exception("run %s failed", run_id)
        run_fail(run_id=run_id, error=traceback.format_exc())
    else:
        try:
            run_succeed(run_id=run_id, metrics=metrics)
        except Exception:  # noqa: BLE001 - registration failed: the transaction rolled back, the run fails
            log.exception("run %s: registering its outputs failed", run_id)
            run_fail(run_id=run_id, error=traceback.format_exc())
    return TrainingRun.objects.get(pk=run_id)
