"""The import and export endpoints: uploads good, bad and too big; roles; the streamed export; export jobs
queued without building their snapshot in the request."""
from __future__ import annotations

import json
import warnings

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.test import AsyncClient

from labeling.models import AuditEvent, ComparisonItem, ExportJob, Judgment, Prompt, Role, Snapshot
from labeling.services.snapshots import export_job_create, export_job_run, export_path, snapshot_create
from tests.conftest import client_for
from tests.factories import CampaignFactory, UserFactory, member

pytestmark = pytest.mark.django_db

PAIRS = b"".join(
    json.dumps({"prompt": f"Question {n}?", "chosen": f"Good answer {n}.", "rejected": f"Bad answer {n}."}).encode() + b"\n"
    for n in range(1, 6)
)


def _upload(client, campaign, content: bytes = PAIRS, name: str = "pairs.jsonl", **fields):
    return client.post(
        f"/api/v1/campaigns/{campaign.pk}/imports/",
        {"file": SimpleUploadedFile(name, content), **fields},
        format="multipart",
    )


@pytest.fixture
def campaign():
    return CampaignFactory()


@pytest.fixture
def admin(campaign):
    return client_for(member(campaign, Role.ADMIN))


def test_an_admin_uploads_a_file_and_gets_the_report(campaign, admin):
    response = _upload(admin, campaign, label_source="team-a")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["format"], body["items_created"], body["judgments_created"], body["dry_run"]) == ("trl", 5, 5, False)
    assert set(Judgment.objects.filter(campaign=campaign).values_list("source_name", flat=True)) == {"team-a"}


def test_a_dry_run_answers_200_and_writes_nothing(campaign, admin):
    response = _upload(admin, campaign, dry_run="true", format="trl")
    assert response.status_code == 200 and response.json()["items_created"] == 5 and response.json()["dry_run"]
    assert not ComparisonItem.objects.exists() and not Prompt.objects.exists()


def test_a_bad_file_is_400_with_the_errors_by_line_and_field(campaign, admin):
    content = PAIRS + b'{"prompt": "Q", "chosen": "", "rejected": "R"}\n' + b"not json\n"
    response = _upload(admin, campaign, content)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and body["field"] == "file" and body["errors_truncated"] is False
    assert [(e["line"], e["field"]) for e in body["errors"]] == [(6, "chosen"), (7, "record")]
    assert not ComparisonItem.objects.exists()


def test_unsplittable_hh_lines_are_skipped_when_asked(campaign, admin):
    good = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}
    empty = {"chosen": "\n\nHuman: Hi?\n\nAssistant: ", "rejected": "\n\nHuman: Hi?\n\nAssistant: No."}
    content = "".join(json.dumps(r) + "\n" for r in (good, empty)).encode()
    assert _upload(admin, campaign, content).status_code == 400
    response = _upload(admin, campaign, content, skip_unsplittable="true")
    assert response.status_code == 201 and response.json()["skipped"][0]["line"] == 2
    assert Prompt.objects.get().text == "\n\nHuman: Hi\n\nAssistant:"


def test_an_upload_over_the_size_limit_is_413_and_leaves_nothing(campaign, admin, settings):
    settings.LOOPWISE_MAX_IMPORT_BYTES = 100
    response = _upload(admin, campaign)
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert "LOOPWISE_MAX_IMPORT_BYTES" in response.json()["detail"]
    assert not Prompt.objects.exists()


def test_an_unknown_format_is_400_naming_the_field(campaign, admin):
    response = _upload(admin, campaign, format="parquet")
    assert response.status_code == 400 and response.json()["field"] == "format"


def test_import_is_for_admins_only(campaign):
    for role in (Role.ANNOTATOR, Role.RESEARCHER):
        response = _upload(client_for(member(campaign, role)), campaign)
        assert response.status_code == 403, role
    assert _upload(client_for(UserFactory()), campaign).status_code == 404
    assert not Prompt.objects.exists()


def _export(client, campaign, **params):
    return client.get(f"/api/v1/campaigns/{campaign.pk}/export/", params)


def test_a_researcher_downloads_the_export_as_a_streamed_attachment(campaign, admin):
    _upload(admin, campaign)
    researcher = client_for(member(campaign, Role.RESEARCHER))
    response = _export(researcher, campaign, format="trl-preference", style="conversational", margin="strength")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert response["Content-Disposition"] == f'attachment; filename="campaign-{campaign.name.split()[-1]}-{campaign.pk}-trl-preference.jsonl"'
    records = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert len(records) == 5 and records[0] == {
        "prompt": [{"role": "user", "content": "Question 1?"}],
        "chosen": [{"role": "assistant", "content": "Good answer 1."}],
        "rejected": [{"role": "assistant", "content": "Bad answer 1."}],
        "margin": 0.0,
    }


def test_export_filters_by_round_and_names_a_bad_option(campaign, admin):
    _upload(admin, campaign)
    round_id = campaign.rounds.get().pk
    response = _export(admin, campaign, round=round_id)
    assert response.status_code == 200 and len(b"".join(response.streaming_content).splitlines()) == 5
    assert "round1" in response["Content-Disposition"]
    bad = _export(admin, campaign, style="fancy")
    assert bad.status_code == 400 and bad.json()["field"] == "style" and "standard" in bad.json()["detail"]
    assert _export(admin, campaign, format="csv").json()["field"] == "format"
    assert _export(admin, campaign, round="x").json()["field"] == "round"
    assert _export(admin, campaign, round=round_id + 999).status_code == 404


def test_export_is_for_admins_and_researchers(campaign):
    assert _export(client_for(member(campaign, Role.ANNOTATOR)), campaign).status_code == 403
    assert _export(client_for(UserFactory()), campaign).status_code == 404


def test_under_asgi_the_export_is_pulled_chunk_by_chunk_not_read_whole(campaign, admin):
    """Daphne serves the app over ASGI, where Django would first read a synchronous iterator into a list."""
    _upload(admin, campaign)
    researcher = member(campaign, Role.RESEARCHER)

    async def download():
        client = AsyncClient()
        await client.aforce_login(researcher)
        response = await client.get(f"/api/v1/campaigns/{campaign.pk}/export/", {"style": "standard"})
        return response, b"".join([chunk async for chunk in response.streaming_content])

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="StreamingHttpResponse must consume")
        response, content = async_to_sync(download)()
    assert response.status_code == 200 and response.is_async
    assert json.loads(content.splitlines()[0]) == {"prompt": "Question 1?", "chosen": "Good answer 1.", "rejected": "Bad answer 1."}


# --- export jobs: queued at once, the snapshot built by the worker ------------------------------------------


def _queue_export(client, campaign, **body):
    return client.post(f"/api/v1/campaigns/{campaign.pk}/exports/", body, format="json")


def test_an_export_without_a_snapshot_is_queued_at_once_with_the_snapshot_pending(
        campaign, admin, django_capture_on_commit_callbacks):
    _upload(admin, campaign)
    with django_capture_on_commit_callbacks() as queued_tasks:
        response = _queue_export(admin, campaign, format="trl-preference", options={"margin": "strength"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["snapshot"], body["snapshot_hash"], body["status"]) == (None, None, "queued")
    assert len(queued_tasks) == 1  # the worker's task, sent after commit
    assert not Snapshot.objects.filter(campaign=campaign).exists(), "the request built no snapshot"
    assert not AuditEvent.objects.filter(action="snapshot.created", campaign_id=campaign.pk).exists()
    shown = admin.get(f"/api/v1/campaigns/{campaign.pk}/exports/{body['id']}/").json()
    assert (shown["snapshot"], shown["snapshot_hash"], shown["status"]) == (None, None, "queued")


def test_a_bad_export_request_is_400_naming_the_field_and_queues_nothing(campaign, admin):
    _upload(admin, campaign)
    other = snapshot_create(campaign=CampaignFactory(), created_by=None)
    for body, field in [({"format": "csv"}, "format"), ({"format": "canonical", "split": "dev"}, "split"),
                        ({"format": "trl-preference", "options": {"style": "fancy"}}, "style")]:
        response = _queue_export(admin, campaign, **body)
        assert response.status_code == 400 and response.json()["field"] == field, response.content
    assert _queue_export(admin, campaign, format="canonical", snapshot=other.pk).status_code == 404
    assert not ExportJob.objects.filter(campaign=campaign).exists()
    assert not Snapshot.objects.filter(campaign=campaign).exists()


def test_the_worker_builds_the_snapshot_once_even_when_the_task_is_delivered_again(campaign, admin, settings, tmp_path):
    """The task body as the cpu worker runs it. A worker that died mid-snapshot left the job running with no
    snapshot (its transaction rolled back); one that died while writing the file left it running with one."""
    settings.STORAGE_DIR = str(tmp_path)
    _upload(admin, campaign)
    user = member(campaign, Role.RESEARCHER)
    job = export_job_create(campaign=campaign, created_by=user, format="canonical")
    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.RUNNING)  # died mid-snapshot
    done = export_job_run(job_id=job.pk)
    assert done.status == ExportJob.Status.DONE and done.snapshot_id is not None and done.records == 5
    first_file = export_path(job.pk).read_bytes()
    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.RUNNING)  # died while writing the file
    again = export_job_run(job_id=job.pk)
    assert again.snapshot_id == done.snapshot_id and export_path(job.pk).read_bytes() == first_file
    assert list(Snapshot.objects.filter(campaign=campaign).values_list("pk", flat=True)) == [done.snapshot_id]
    made = AuditEvent.objects.filter(action="snapshot.created", campaign_id=campaign.pk)
    assert [(e.object_id, e.actor_id) for e in made] == [(str(done.snapshot_id), user.pk)]
    # The same snapshot snapshot_create makes of the same data (it finds it by its hash).
    direct = snapshot_create(campaign=campaign, created_by=None)
    assert (direct.pk, direct.content_hash) == (done.snapshot_id, done.snapshot.content_hash)
    exported = AuditEvent.objects.filter(action="data.exported", object_type="export", object_id=str(job.pk)).first()
    assert exported.details["snapshot"] == done.snapshot_id


def test_the_database_refuses_a_done_export_without_a_snapshot(campaign):
    job = ExportJob.objects.create(campaign=campaign, format="canonical")
    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.DONE)
