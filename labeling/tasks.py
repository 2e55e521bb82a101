"""Celery tasks of the labeling app. Each takes ids and is idempotent (acks_late: a task whose worker dies is
delivered again); the work itself lives in services."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="labeling.export_run", acks_late=True, queue="cpu")
def export_run(job_id: int) -> None:
    """Build an export job's snapshot if it was queued without one, then write its file
    (``services.snapshots.export_job_run``)."""
    from .services.snapshots import export_job_run

    export_job_run(job_id=job_id)
