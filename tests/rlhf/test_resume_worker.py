"""A worker killed with SIGKILL in the middle of a training run, on Redis with real worker processes: the task was
acknowledged late, so the broker hands it out again and a new worker resumes the run from its newest checkpoint,
finishes it and registers exactly one model.

Redis hands an unacknowledged task out again once its visibility timeout (1 hour by default) has passed; the test
runs kombu's own restore of unacknowledged messages with that timeout at zero instead of waiting the hour."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection

from rlhf.models import RewardModelVersion, TrainingRun
from rlhf.services import runs
from rlhf.training import checkpoints
from tests import celery_worker
from tests.factories import CampaignFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.training]

REDIS_URL = os.environ.get("LOOPWISE_RESUME_REDIS_URL") or os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def _wait(what: str, check, proc, log: Path, timeout: float = 90.0):
    return celery_worker.wait_for(what, check, proc, log, timeout=timeout, interval=0.05)


def _second_worker(storage: Path, log_path: Path) -> subprocess.Popen:
    """Another worker on the same broker and database. Not ``celery_worker()``: that one empties the broker
    first, which would drop the very task this worker must receive."""
    env = {**os.environ, "DATABASE_URL": celery_worker.test_database_url(), "LOOPWISE_STORAGE_DIR": str(storage),
           "DB_CONN_MAX_AGE": "0", "OMP_NUM_THREADS": "1", "REDIS_URL": REDIS_URL}
    env.pop("TEST_DATABASE_NAME", None)
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu", "--pool", "solo", "--concurrency", "1",
         "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=celery_worker.REPO, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
    )


def _redeliver_unacknowledged() -> None:
    """What Redis does for the dead worker's task once the visibility timeout has passed."""
    with Connection(REDIS_URL, transport_options={"visibility_timeout": 0}) as conn:
        conn.default_channel.qos.restore_visible(num=100)


def test_a_killed_worker_s_run_resumes_on_a_new_worker_and_registers_one_model(storage, tiny_reward_dir, tmp_path):
    from rlhf.training.common import write_jsonl
    from rlhf.training.tiny import synthetic_pairs

    write_jsonl(tmp_path / "pairs.jsonl", synthetic_pairs(64, seed=1))
    campaign = CampaignFactory()
    run = runs.run_create(kind="reward", campaign=campaign, spec={
        "model": str(tiny_reward_dir), "train_file": str(tmp_path / "pairs.jsonl"), "max_steps": 60,
        "checkpoint_every": 5, "max_length": 64, "batch_size": 8, "lr": 3e-3})
    folder = storage / "runs" / str(run.pk)
    first_log, second_log = tmp_path / "worker1.log", tmp_path / "worker2.log"
    with celery_worker.celery_worker(queues="gpu", storage=storage, log_path=first_log, redis_url=REDIS_URL) as first:
        runs.run_enqueue(run=run)
        _wait("a checkpoint", lambda: checkpoints.find_resume(folder, _spec(run)), first, first_log)
        os.kill(first.pid, signal.SIGKILL)  # no warm shutdown: the task is neither acknowledged nor requeued
        first.wait(timeout=10)
        run.refresh_from_db()
        assert run.status == TrainingRun.Status.RUNNING and run.attempts == 1
        assert not (folder / "metrics.json").exists()  # it really died mid-run

        _redeliver_unacknowledged()
        second = _second_worker(storage, second_log)
        try:
            _wait("the run to finish", lambda: TrainingRun.objects.get(pk=run.pk).finished, second, second_log)
        finally:
            second.terminate()
            second.wait(timeout=10)

    done = TrainingRun.objects.get(pk=run.pk)
    assert done.status == TrainingRun.Status.SUCCEEDED, done.error
    assert done.attempts == 2 and done.metrics["steps"] == 60
    resumed = done.metrics["resumed_from_step"]
    assert resumed > 0 and resumed % 5 == 0, done.metrics
    assert f"resumed from the checkpoint at step {resumed}" in done.log_tail
    assert RewardModelVersion.objects.filter(campaign=campaign).count() == 1
    assert done.reward_version.model_dir == str(folder / "model")
    assert not list(folder.glob("checkpoint-*"))


def _spec(run: TrainingRun):
    from rlhf.training.specs import spec_from_dict

    return spec_from_dict(run.spec)
