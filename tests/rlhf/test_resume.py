"""Runs whose worker died, in-process: the first attempt is the real job run into the run's folder until it stops
after a checkpoint (as a killed worker leaves it: status running, checkpoints on disk); the re-delivered task then
resumes it from that checkpoint. A delivery while another live worker holds the run waits for it, then does nothing. The same
with real worker processes killed with SIGKILL: ``test_resume_worker.py``."""
from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest
from django.db import connection

from rlhf.models import PolicyVersion, RewardModelVersion, TrainingRun
from rlhf.services import runs
from rlhf.services.execution import RUN_LOCK_SPACE, execute_run
from rlhf.services.registry import base_model_get_or_create, policy_base_version
from tests import celery_worker
from tests.factories import CampaignFactory

pytestmark = [pytest.mark.django_db, pytest.mark.training]


class WorkerDied(Exception):
    pass


def _pairs_file(path, n=16):
    from rlhf.training.tiny import synthetic_pairs

    path.write_text("".join(json.dumps(r) + "\n" for r in synthetic_pairs(n, seed=1, chat=True)))
    return str(path)


def _first_attempt_dies_at(run: TrainingRun, step: int) -> TrainingRun:
    """Claim the run as a worker does and run its job, reporting progress, until it dies at ``step``."""
    from rlhf.training import run_job
    from rlhf.training.specs import spec_from_dict

    assert runs.run_start(run_id=run.pk, task_id="first") is not None

    def progress(rec: dict) -> None:
        runs.run_record_progress(run_id=run.pk, record=rec)
        if rec["step"] == step:
            raise WorkerDied

    with pytest.raises(WorkerDied):
        run_job(spec_from_dict(run.spec), progress=progress)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING and run.progress_step == step
    return run


def test_a_redelivered_task_resumes_a_run_whose_worker_died_and_registers_one_policy(storage, tiny_policy_dir,
                                                                                      tmp_path):
    campaign = CampaignFactory()
    v0 = policy_base_version(campaign=campaign, base=base_model_get_or_create(name="tiny", source=str(tiny_policy_dir)))
    run = runs.run_create(kind="dpo", campaign=campaign, policy=v0, spec={
        "model": str(tiny_policy_dir), "train_file": _pairs_file(tmp_path / "pairs.jsonl"), "max_steps": 6,
        "checkpoint_every": 2, "max_length": 64, "batch_size": 4, "lr": 1e-2})
    _first_attempt_dies_at(run, step=5)  # checkpoint-4 is on disk, step 5 was lost
    folder = storage / "runs" / str(run.pk)
    assert (folder / "checkpoint-4" / "adapter_model.safetensors").is_file()

    done = execute_run(run.pk, task_id="redelivered")
    assert done.status == TrainingRun.Status.SUCCEEDED, done.error
    assert done.attempts == 2 and done.progress_step == done.progress_total == 6
    assert done.metrics["resumed_from_step"] == 4 and done.metrics["steps"] == 6
    assert done.metrics["resumes"] == [{"attempt": 2, "from_step": 4, "died_at_step": 5}]
    assert "attempt 2: resumed from the checkpoint at step 4" in done.log_tail
    # Exactly one model; the finished run's checkpoints are gone and are not among its artifacts.
    assert PolicyVersion.objects.filter(campaign=campaign, number__gt=0).count() == 1
    assert done.policy_version.adapter_dir == str(folder / "adapter")
    assert not list(folder.glob("checkpoint-*")) and not any("checkpoint" in a["path"] for a in done.artifacts)

    # Delivered once more, the finished run stays as it is.
    again = execute_run(run.pk, task_id="late")
    assert again.attempts == 2 and again.celery_task_id == "redelivered"


def test_a_run_cancelled_while_its_worker_was_dead_is_cancelled_on_redelivery(storage, tiny_reward_dir, tmp_path):
    campaign = CampaignFactory()
    run = runs.run_create(kind="reward", campaign=campaign, spec={
        "model": str(tiny_reward_dir), "train_file": _pairs_file(tmp_path / "pairs.jsonl"), "max_steps": 8,
        "checkpoint_every": 2, "max_length": 64, "batch_size": 4})
    _first_attempt_dies_at(run, step=5)
    runs.run_cancel(run=run)  # running: only a request, which the dead worker never sees
    done = execute_run(run.pk)
    assert done.status == TrainingRun.Status.CANCELLED and done.attempts == 1
    assert not RewardModelVersion.objects.filter(campaign=campaign).exists()
    assert not list((storage / "runs" / str(run.pk)).glob("checkpoint-*"))  # nothing will resume it


def test_a_failure_after_resuming_registers_nothing(storage, tiny_reward_dir, tmp_path):
    campaign = CampaignFactory()
    data = tmp_path / "pairs.jsonl"
    run = runs.run_create(kind="reward", campaign=campaign, spec={
        "model": str(tiny_reward_dir), "train_file": _pairs_file(data), "max_steps": 8, "checkpoint_every": 2,
        "max_length": 64, "batch_size": 4})
    _first_attempt_dies_at(run, step=5)
    data.write_text("not json\n")  # the data went bad while the run was down
    done = execute_run(run.pk)
    assert done.status == TrainingRun.Status.FAILED and "invalid JSON" in done.error
    assert not RewardModelVersion.objects.filter(campaign=campaign).exists()
    assert not list((storage / "runs" / str(run.pk)).glob("checkpoint-*"))


@pytest.mark.django_db(transaction=True)  # the "first worker" thread must see the committed run
def test_a_delivery_while_a_live_worker_runs_the_run_waits_for_it_and_then_does_nothing(storage, tiny_reward_dir,
                                                                                         tmp_path):
    run = runs.run_create(kind="reward", spec={
        "model": str(tiny_reward_dir), "train_file": _pairs_file(tmp_path / "pairs.jsonl"), "max_steps": 2,
        "max_length": 64, "batch_size": 4})
    runs.run_start(run_id=run.pk, task_id="first")
    # The first worker's database session holds the run's advisory lock for as long as it runs it.
    first_worker = psycopg.connect(celery_worker.test_database_url(), autocommit=True)
    first_worker.execute("SELECT pg_advisory_lock(%s, %s)", (RUN_LOCK_SPACE, run.pk))

    def first_worker_finishes() -> None:
        time.sleep(1.0)
        runs.run_fail(run_id=run.pk, error="the first worker's own outcome")
        connection.close()
        first_worker.close()

    thread = threading.Thread(target=first_worker_finishes)
    t0 = time.monotonic()
    thread.start()
    again = execute_run(run.pk, task_id="duplicate")
    thread.join()
    assert time.monotonic() - t0 >= 1.0  # it waited instead of training the run a second time beside it
    assert again.status == TrainingRun.Status.FAILED and again.error == "the first worker's own outcome"
    assert again.attempts == 1 and again.celery_task_id == "first"
    assert not (storage / "runs" / str(run.pk) / "progress.jsonl").exists()  # no job ran here


def test_a_run_whose_worker_died_before_any_checkpoint_starts_over(storage, tiny_reward_dir, tmp_path):
    run = runs.run_create(kind="reward", spec={
        "model": str(tiny_reward_dir), "train_file": _pairs_file(tmp_path / "pairs.jsonl"), "max_steps": 3,
        "checkpoint_every": 10, "max_length": 64, "batch_size": 4})
    _first_attempt_dies_at(run, step=2)
    done = execute_run(run.pk, task_id="redelivered")
    assert done.status == TrainingRun.Status.SUCCEEDED, done.error
    assert done.attempts == 2 and done.metrics["resumed_from_step"] == 0 and done.metrics["steps"] == 3
    assert done.metrics["resumes"] == [{"attempt": 2, "from_step": 0, "died_at_step": 2}]
