"""Training runs: create, enqueue, start, record progress, cancel, finish.

A run's artifacts live under ``settings.STORAGE_DIR / "runs" / <id>``. The worker moves a run
queued -> running -> succeeded / failed / cancelled (a run left running by a dead worker runs again from its newest
checkpoint in that folder); each transition takes the run's row lock
(``locks.run_lock``), so a cancel, a re-delivered task and the worker never disagree. Outputs (a PolicyVersion or
RewardModelVersion) are registered in the same transaction that marks the run succeeded: a run that fails or is
cancelled leaves no model behind.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling.errors import Conflict, ValidationError
from labeling.events import send_event_on_commit
from labeling.models import Campaign, Round

from ..locks import run_lock
from ..models import PolicyVersion, RewardModelVersion, TrainingRun

LOG_TAIL_CHARS = 8000
TRAINING_KINDS = ("reward", "dpo", "grpo", "rloo", "ppo")
POLICY_KINDS = ("dpo", "grpo", "rloo", "ppo")


class RunCancelled(Exception):
    """Raised inside a job's progress callback when a cancel was requested: the job stops at that step."""


def runs_root() -> Path:
    return Path(settings.STORAGE_DIR) / "runs"


def run_dir(run_id: int) -> Path:
    return runs_root() / str(run_id)


def _validate_spec(kind: str, spec: dict) -> None:
    if kind == TrainingRun.Kind.EVALUATE:
        return
    from rlhf.training.specs import spec_from_dict

    try:
        spec_from_dict({**spec, "kind": kind, "output_dir": spec.get("output_dir") or "pending"})
    except ValueError as exc:
        raise ValidationError(f"spec: {exc}", field="spec") from None


@transaction.atomic
def run_create(
    *,
    kind: str,
    spec: dict,
    campaign: Campaign | None = None,
    round: Round | None = None,
    policy: PolicyVersion | None = None,
    reward_model: RewardModelVersion | None = None,
    data_path: str = "",
    data_sha256: str = "",
    created_by: AbstractBaseUser | None = None,
) -> TrainingRun:
    """A queued run. ``spec`` is a job spec without ``output_dir`` (the run's folder is filled in) and is
    validated now, so a typo fails here rather than on the worker."""
    if kind not in TrainingRun.Kind.values:
        raise ValidationError(f"kind must be one of {TrainingRun.Kind.values} (got {kind!r})", field="kind")
    spec = {k: v for k, v in spec.items() if k != "output_dir"}
    _validate_spec(kind, spec)
    run = TrainingRun.objects.create(
        kind=kind, spec={**spec, "kind": kind}, campaign=campaign, round=round, policy=policy,
        reward_model=reward_model, data_path=data_path, data_sha256=data_sha256, created_by=created_by,
    )
    run.spec["output_dir"] = str(run_dir(run.pk))
    run.save(update_fields=["spec"])
    return run


def run_enqueue(*, run: TrainingRun) -> TrainingRun:
    """Send the run to its Celery queue once the surrounding transaction commits (a rolled-back run is never
    sent). The task id is chosen here and stored, so the run always names its task."""
    from .. import tasks

    task_id = str(uuid.uuid4())
    TrainingRun.objects.filter(pk=run.pk).update(celery_task_id=task_id)
    run.celery_task_id = task_id
    transaction.on_commit(lambda: tasks.gpu_run.apply_async(args=[run.pk], task_id=task_id))
    return run


@transaction.atomic
def run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Cancel: a queued run is cancelled now (its task, when delivered, does nothing); a running one is asked
    to stop and stops at its next progress step. A finished run is a 409."""
    run = run_lock(run.pk).get()
    if run.finished:
        raise Conflict(f"run {run.pk} is {run.status}: nothing to cancel")
    if run.status == TrainingRun.Status.QUEUED:
        run.status = TrainingRun.Status.CANCELLED
        run.finished_at = timezone.now()
    run.cancel_requested = True
    run.save(update_fields=["status", "finished_at", "cancel_requested", "updated_at"])
    _event(run, "run.cancel_requested")
    return run


@transaction.atomic
def run_start(*, run_id: int, task_id: str = "") -> TrainingRun | None:
    """Claim a run for a worker. None when there is nothing to do: the run is finished (a re-delivered task)
    or was cancelled before it started. A run found ``running`` is one whose worker died (the caller makes sure
    no live worker holds it): it runs again in the same folder, and the job resumes from its newest checkpoint
    (``rlhf.training.checkpoints``; :func:`run_record_resume` records the step)."""
    run = run_lock(run_id).first()
    if run is None or run.finished:
        return None
    if run.cancel_requested:
        _finish(run, TrainingRun.Status.CANCELLED)
        return None
    resuming = run.status == TrainingRun.Status.RUNNING
    run.status = TrainingRun.Status.RUNNING
    run.attempts += 1
    if resuming:
        # Until the job reports the checkpoint it continues from, this attempt counts as a start from step 0.
        resumes = [*(run.metrics or {}).get("resumes", []), {"attempt": run.attempts, "from_step": 0,
                                                               "died_at_step": run.progress_step}]
        run.metrics = {**(run.metrics or {}), "resumed_from_step": 0, "resumes": resumes}
        run.log_tail = _append_log(run.log_tail, f"attempt {run.attempts}: the worker of attempt "
                                                 f"{run.attempts - 1} died at step {run.progress_step}; running again")
    else:
        run.started_at = timezone.now()
    run.progress_step = 0
    if task_id:
        run.celery_task_id = task_id
    run.save(update_fields=["status", "attempts", "started_at", "progress_step", "celery_task_id", "metrics",
                            "log_tail", "updated_at"])
    _event(run, "run.resumed" if resuming else "run.started")
    return run


@transaction.atomic
def run_record_resume(*, run_id: int, step: int) -> TrainingRun | None:
    """The job resumed from its checkpoint at ``step``: ``metrics.resumed_from_step`` and the log say so."""
    run = run_lock(run_id).first()
    if run is None or run.status != TrainingRun.Status.RUNNING:
        return run
    resumes = list((run.metrics or {}).get("resumes") or [{"attempt": run.attempts}])
    resumes[-1] = {**resumes[-1], "from_step": step}
    run.metrics = {**(run.metrics or {}), "resumed_from_step": step, "resumes": resumes}
    run.log_tail = _append_log(run.log_tail, f"attempt {run.attempts}: resumed from the checkpoint at step {step}")
    run.save(update_fields=["metrics", "log_tail", "updated_at"])
    return run


def _append_log(text: str, line: str) -> str:
    return ((text + "\n" if text else "") + line)[-LOG_TAIL_CHARS:]


def run_record_progress(*, run_id: int, record: dict) -> bool:
    """Store a progress record (step, total, loss, steps/s, ETA) and push it to the campaign's live group.
    Returns whether a cancel was requested, so the caller can stop."""
    fields = {
        "progress_step": int(record.get("step") or 0),
        "progress_total": int(record.get("total") or 0),
        "loss": _num(record.get("loss")),
        "steps_per_s": _num(record.get("steps_per_s")),
        "eta_s": _num(record.get("eta_s")),
        "updated_at": timezone.now(),
    }
    TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(**fields)
    row = TrainingRun.objects.filter(pk=run_id).values("campaign_id", "kind", "cancel_requested").first()
    if row is None:
        return True
    if row["campaign_id"] is not None:
        payload = {"run": run_id, "kind": row["kind"], **{k: v for k, v in fields.items() if k != "updated_at"}}
        send_event_on_commit(campaign_id=row["campaign_id"], type="run.progress", payload=payload)
    return bool(row["cancel_requested"])


def _num(value) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def artifacts_of(folder: Path) -> list[dict]:
    """Every file under ``folder`` with its size and sha256 (relative paths, sorted)."""
    out = []
    if not folder.is_dir():
        return out
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        out.append({"path": str(path.relative_to(folder)), "bytes": path.stat().st_size, "sha256": file_sha256(path)})
    return out


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _log_tail(folder: Path, extra: str = "") -> str:
    text = ""
    progress = folder / "progress.jsonl"
    if progress.is_file():
        text = progress.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
    if extra:
        text = (text + "\n" + extra)[-LOG_TAIL_CHARS:]
    return text


def _finish(run: TrainingRun, status: str, *, metrics: dict | None = None, error: str = "") -> None:
    folder = run_dir(run.pk)
    run.status = status
    run.finished_at = timezone.now()
    run.metrics = metrics if metrics is not None else run.metrics
    run.error = error[-LOG_TAIL_CHARS:]
    # The progress log, then this run's notes about attempts (a worker died, the step it resumed from).
    notes = "\n".join(line for line in (run.log_tail or "").splitlines() if line.startswith("attempt "))
    run.log_tail = _log_tail(folder, "\n".join(x for x in (notes, error) if x))
    run.save()
    _event(run, f"run.{status}")


def run_succeed(*, run_id: int, metrics: dict) -> TrainingRun | None:
    """Mark the run succeeded, store its artifacts with sha256 and register what it produced, all in one
    transaction. A run cancelled meanwhile stays cancelled and registers nothing."""
    from .registry import register_outputs

    artifacts = artifacts_of(run_dir(run_id))  # hashing happens before the lock is taken
    with transaction.atomic():
        run = run_lock(run_id).first()
        if run is None or run.status != TrainingRun.Status.RUNNING:
            return run
        if run.cancel_requested:
            _finish(run, TrainingRun.Status.CANCELLED)
            return run
        run.artifacts = artifacts
        run.progress_step = max(run.progress_step, run.progress_total)
        final = json.loads(json.dumps(metrics, default=str))
        if (run.metrics or {}).get("resumes"):  # the history of attempts outlives the job's own metrics
            final = {**final, "resumes": run.metrics["resumes"]}
        _finish(run, TrainingRun.Status.SUCCEEDED, metrics=final)
        register_outputs(run=run)
    return run


@transaction.atomic
def run_fail(*, run_id: int, error: str, cancelled: bool = False) -> TrainingRun | None:
    run = run_lock(run_id).first()
    if run is None or run.finished:
        return run
    _finish(run, TrainingRun.Status.CANCELLED if cancelled else TrainingRun.Status.FAILED, error=error)
    return run


def _event(run: TrainingRun, type: str) -> None:
    if run.campaign_id is not None:
        send_event_on_commit(
            campaign_id=run.campaign_id, type=type, payload={"run": run.pk, "kind": run.kind, "status": run.status}
        )
