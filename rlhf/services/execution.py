"""Running a TrainingRun in the worker process: claim it, run the job with a progress callback that writes
progress and honours cancellation, then finish it (success registers its outputs atomically). A run whose worker
died is run again by the next delivery of its task and resumes from its newest checkpoint."""
from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

from ..models import TrainingRun
from .runs import (
    RunCancelled,
    run_dir,
    run_fail,
    run_record_progress,
    run_record_resume,
    run_start,
    run_succeed,
)

log = logging.getLogger(__name__)

# Progress rows are written at most this often (the last step is always written); a cancel is seen within it.
PROGRESS_INTERVAL_S = 0.5
# First key of the two-key advisory lock a worker holds on a run it executes (any constant unique in this project).
RUN_LOCK_SPACE = 0x4C57


def _job(run: TrainingRun):
    if run.kind == TrainingRun.Kind.EVALUATE:
        from ..evaluation import run_evaluation

        return lambda progress: run_evaluation(run.spec, progress)
    from rlhf.training import run_job
    from rlhf.training.specs import spec_from_dict

    spec = spec_from_dict(run.spec)
    return lambda progress: run_job(spec, progress)


@contextmanager
def _run_held(run_id: int) -> Iterator[None]:
    """A session-level PostgreSQL advisory lock on the run, held while this worker runs it. A second delivery of
    the task (the broker re-delivers an unacknowledged task after its visibility timeout, even when the first
    worker is alive) waits here until that worker is done, then finds the run finished and does nothing: never two
    workers training into one folder. A worker that dies loses its connection and with it the lock, so the next
    delivery goes straight on and resumes the run. Other databases (the embedded SQLite, one worker): no lock."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", [RUN_LOCK_SPACE, run_id])
        if not cur.fetchone()[0]:
            log.info("run %s is being run by another worker: waiting for it to finish", run_id)
            cur.execute("SELECT pg_advisory_lock(%s, %s)", [RUN_LOCK_SPACE, run_id])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", [RUN_LOCK_SPACE, run_id])
        except DatabaseError:  # the session is gone, and its lock with it
            log.warning("run %s: could not release its advisory lock", run_id, exc_info=True)


def execute_run(run_id: int, task_id: str = "") -> TrainingRun | None:
    """Run ``run_id`` to the end in this process. Idempotent: a finished run is returned untouched (a run another
    live worker is running is returned once that worker is done with it). A run whose worker died resumes from its
    newest checkpoint."""
    with _run_held(run_id):
        run = run_start(run_id=run_id, task_id=task_id)
        if run is not None:
            _execute(run)
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is not None and run.status in (TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED):
        from rlhf.training import checkpoints

        checkpoints.clear(run_dir(run_id))  # nothing resumes a finished run (a retry is a new run): free the disk
    return run


def _execute(run: TrainingRun) -> None:
    run_id = run.pk
    last = {"t": 0.0}

    def progress(record: dict) -> None:
        if record.get("resumed_from_step"):
            run_record_resume(run_id=run_id, step=int(record["resumed_from_step"]))
        now = time.monotonic()
        final = record.get("total") and record.get("step") == record.get("total")
        if now - last["t"] < PROGRESS_INTERVAL_S and not final and not record.get("resumed_from_step"):
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
