"""Export jobs run by a real Celery worker process: on Redis, and on the embedded filesystem broker (no
server at all). The worker reads the pytest database (transaction=True, so it sees committed rows)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings

from labeling.exporters import record_exporter_get
from labeling.models import AuditEvent, ExportJob, Role, Snapshot
from labeling.pii import PiiReport
from labeling.services.export_parts import export_write
from labeling.services.snapshots import export_job_create, export_job_run, export_path, snapshot_create
from labeling.tasks import export_run
from tests.celery_worker import celery_worker
from tests.conftest import client_for
from tests.factories import CampaignFactory, ItemFactory, member
from tests.labeling.test_snapshots import judge

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = os.environ.get("LOOPWISE_GOV_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture(params=["redis", "filesystem"])
def worker(request, tmp_path):
    """A worker on the ``cpu`` queue, and this process's Celery app publishing to the same broker."""
    storage = tmp_path / "storage"
    log_path = tmp_path / "worker.log"
    redis_url = REDIS_URL if request.param == "redis" else None
    # Every export in two processes, however small: the forked parts run inside a real worker.
    parallel = {"LOOPWISE_EXPORT_WORKERS": "2", "LOOPWISE_EXPORT_PARALLEL_MIN": "0"}
    with celery_worker(queues="cpu", storage=storage, log_path=log_path, redis_url=redis_url,
                       env=parallel) as proc, override_settings(STORAGE_DIR=storage):
        yield request.param, proc, log_path


def _wait_done(job_id: int, proc, log: Path, timeout: float = 60.0) -> ExportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ExportJob.objects.get(pk=job_id)
        if job.status in (ExportJob.Status.DONE, ExportJob.Status.FAILED):
            return job
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"export {job_id} not finished; worker log:\n{log.read_text()[-4000:]}")


def _campaign_with_judgments(n=5):
    campaign = CampaignFactory()
    annotator = member(campaign)
    for i in range(n):
        judge(ItemFactory(campaign=campaign), annotator, winner=i % 2, strength=1 + i % 3)
    return campaign


def test_a_worker_writes_the_export_and_it_is_listed_and_downloadable(worker):
    broker, proc, log = worker
    campaign = _campaign_with_judgments()
    researcher = member(campaign, Role.RESEARCHER)
    client = client_for(researcher)
    queued = client.post(f"/api/v1/campaigns/{campaign.pk}/exports/",
                         {"format": "trl-preference", "options": {"margin": "strength"}}, format="json")
    assert queued.status_code == 202, queued.content
    assert (queued.json()["snapshot"], queued.json()["status"]) == (None, "queued")  # built by the worker
    job = _wait_done(queued.json()["id"], proc, log)
    assert job.status == ExportJob.Status.DONE, job.error
    assert job.snapshot is not None and job.snapshot.created_by == researcher
    # The worker's snapshot is the one snapshot_create makes of the same data (found again by its hash).
    direct = snapshot_create(campaign=campaign, created_by=None)
    assert (direct.pk, direct.content_hash) == (job.snapshot_id, job.snapshot.content_hash)
    path = export_path(job.pk)
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == job.sha256 and job.size_bytes == len(data)
    rows = [json.loads(line) for line in data.decode().splitlines()]
    assert job.records == len(rows) == 5 and {"prompt", "chosen", "rejected", "margin"} <= set(rows[0])
    one_pass = io.BytesIO()  # the worker wrote two parts and joined them: the bytes of one pass
    export_write(snapshot=job.snapshot, split=None, fh=one_pass, workers=1, report=PiiReport(), parts_at=Path("-"),
                 make_exporter=lambda: record_exporter_get("trl-preference", {"margin": "strength"}))
    assert one_pass.getvalue() == data
    assert not list(path.parent.glob(".*.part")), "the temporary file was renamed, not left behind"
    listed = client.get(f"/api/v1/campaigns/{campaign.pk}/exports/").json()["results"]
    assert [(e["id"], e["status"], e["snapshot"]) for e in listed] == [(job.pk, "done", job.snapshot_id)]
    download = client.get(f"/api/v1/campaigns/{campaign.pk}/exports/{job.pk}/download/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == data
    assert download["X-Content-SHA256"] == job.sha256
    assert AuditEvent.objects.filter(action="data.exported", object_id=str(job.pk), actor=researcher).exists()
    print(f"\nexport job on the {broker} broker: {job.records} rows, {(job.finished_at - job.created_at).total_seconds():.2f} s")
    # Idempotent on the job id: a second delivery of a finished job does nothing.
    assert export_job_run(job_id=job.pk) is None
    assert path.read_bytes() == data
    _redelivered_job_keeps_its_snapshot(job, data, proc, log)
    if broker == "redis":  # one broker is enough for the failure path
        _failed_export_says_why(campaign, proc, log)


def _redelivered_job_keeps_its_snapshot(job: ExportJob, data: bytes, proc, log) -> None:
    """The task delivered again for a job left running (its worker died after the snapshot was attached):
    the worker writes the same file again and builds no second snapshot."""
    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.RUNNING)
    export_run.delay(job.pk)
    again = _wait_done(job.pk, proc, log)
    assert again.status == ExportJob.Status.DONE and again.snapshot_id == job.snapshot_id, again.error
    assert list(Snapshot.objects.filter(campaign_id=job.campaign_id).values_list("pk", flat=True)) == [job.snapshot_id]
    assert AuditEvent.objects.filter(action="snapshot.created", campaign_id=job.campaign_id).count() == 1
    assert export_path(job.pk).read_bytes() == data


def test_two_deliveries_at_once_build_one_snapshot(tmp_path, settings):
    """Both run the task body at the same moment (acks_late redelivered it while the first still ran): the
    second waits on the job's row until the first has attached its snapshot, then uses it instead of building
    another."""
    settings.STORAGE_DIR = str(tmp_path)
    campaign = _campaign_with_judgments(n=30)
    job = ExportJob.objects.create(campaign=campaign, format="canonical")  # queued, no snapshot, no message sent
    start = threading.Barrier(2)
    results: list = []

    def deliver() -> None:
        try:
            start.wait()
            results.append(export_job_run(job_id=job.pk))
        except Exception as exc:  # reported by the assertion below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2 and all(isinstance(r, ExportJob) for r in results), results
    snapshots = list(Snapshot.objects.filter(campaign=campaign).values_list("pk", flat=True))
    assert len(snapshots) == 1 and ExportJob.objects.get(pk=job.pk).snapshot_id == snapshots[0]
    assert AuditEvent.objects.filter(action="snapshot.created", campaign_id=campaign.pk).count() == 1
    # Built once, not twice with the loser thrown away (snapshot_create drops a duplicate it finds at the end,
    # after the whole build): no other snapshot row was ever started, so the next one takes the next id.
    assert snapshot_create(campaign=CampaignFactory(), created_by=None).pk == snapshots[0] + 1


def _failed_export_says_why(campaign, proc, log) -> None:
    admin = member(campaign, Role.ADMIN)
    job = export_job_create(campaign=campaign, created_by=admin, format="canonical")
    ExportJob.objects.filter(pk=job.pk).update(format="no-such-format")  # as if the format were removed since
    job = _wait_done(job.pk, proc, log)
    assert job.status == ExportJob.Status.FAILED and "no-such-format" in job.error
    response = client_for(admin).get(f"/api/v1/campaigns/{campaign.pk}/exports/{job.pk}/download/")
    assert response.status_code == 409 and "failed" in response.json()["detail"]
