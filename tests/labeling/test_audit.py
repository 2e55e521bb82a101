"""The audit log (who did what, when, how much; admins filter it) and deletions that mark snapshots."""
from __future__ import annotations

import json

import pytest

from labeling.models import Assignment, AuditEvent, Judgment, Prompt, Role, Snapshot
from labeling.selectors_governance import snapshot_ids_with_deleted_data, snapshot_records
from labeling.services.campaigns import campaign_create, membership_add, membership_remove
from labeling.services.deletion import annotator_data_delete, prompt_delete
from labeling.services.snapshots import snapshot_create
from tests.conftest import client_for
from tests.factories import CampaignFactory, ItemFactory, UserFactory, member
from tests.labeling.test_snapshots import judge

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged():
    campaign = CampaignFactory()
    admin, a1, a2 = member(campaign, Role.ADMIN), member(campaign), member(campaign)
    items = [ItemFactory(campaign=campaign) for _ in range(4)]
    for item in items:
        judge(item, a1)
        judge(item, a2, winner=1)
    Assignment.objects.filter(campaign=campaign).update(state="available")
    return campaign, admin, (a1, a2), items


def test_actions_are_recorded_with_actor_time_and_counts(tmp_path):
    boss = UserFactory(is_staff=True)
    campaign = campaign_create(created_by=boss, name="Audited")
    someone = UserFactory()
    membership_add(campaign=campaign, user=someone, role=Role.ANNOTATOR, changed_by=boss)
    membership_remove(campaign=campaign, user=someone, role=Role.ANNOTATOR, changed_by=boss)
    upload = tmp_path / "p.jsonl"
    upload.write_text(json.dumps({"prompt": "Hi", "chosen": "Hello", "rejected": "Go"}) + "\n")
    from labeling.importers import import_file

    import_file(campaign=campaign, path=upload, imported_by=boss)
    snapshot_create(campaign=campaign, created_by=boss)
    events = list(AuditEvent.objects.filter(campaign_id=campaign.pk).order_by("id"))
    assert [e.action for e in events] == ["campaign.created", "role.added", "role.removed", "data.imported",
                                          "snapshot.created"]
    assert all(e.actor == boss and e.actor_name == boss.username and e.created_at for e in events)
    assert events[3].counts == {"records": 1, "prompts": 1, "items": 1, "judgments": 1}
    assert events[1].details == {"user": someone.username, "role": "annotator"}


def test_deleting_a_prompt_marks_the_snapshots_that_held_it(judged):
    campaign, admin, _, items = judged
    snapshot = snapshot_create(campaign=campaign, created_by=admin)
    untouched = snapshot_create(campaign=campaign, created_by=admin, filters={"annotator_ids": [999999]})
    event = prompt_delete(prompt=items[0].prompt, deleted_by=admin, reason="user request")
    assert event.counts == {"prompts": 1, "responses": 2, "items": 1, "judgments": 2}
    assert not Prompt.objects.filter(pk=items[0].prompt_id).exists()
    snapshot.refresh_from_db()
    untouched.refresh_from_db()
    assert snapshot.data_deleted_at is not None and snapshot.deletions == [event.pk]
    assert untouched.data_deleted_at is None
    assert event.details["snapshots_marked"] == [snapshot.pk]
    assert snapshot_ids_with_deleted_data(snapshot_ids=[snapshot.pk, untouched.pk]) == {snapshot.pk}
    assert len(list(snapshot_records(snapshot=snapshot))) == 6  # what is left of it
    again = snapshot_create(campaign=campaign, created_by=admin)
    assert again.pk != snapshot.pk and again.content_hash != snapshot.content_hash


def test_deleting_an_annotators_data_frees_their_slots_and_marks_snapshots(judged):
    campaign, admin, (a1, a2), items = judged
    Assignment.objects.filter(item=items[0]).update(annotator=a1, state="done")
    snapshot = snapshot_create(campaign=campaign, created_by=admin)
    event = annotator_data_delete(campaign=campaign, annotator=a1, deleted_by=admin)
    assert event.counts["judgments"] == 4 and event.counts["slots_freed"] == 1
    assert not Judgment.objects.filter(annotator=a1).exists() and Judgment.objects.filter(annotator=a2).count() == 4
    assert Assignment.objects.get(item=items[0]).state == "available"
    assert Snapshot.objects.get(pk=snapshot.pk).data_deleted_at is not None


def test_audit_api_filters_and_scopes(judged):
    campaign, admin, (a1, _), items = judged
    other = CampaignFactory()
    other_admin = member(other, Role.ADMIN)
    client = client_for(admin)
    deleted = client.post(f"/api/v1/campaigns/{campaign.pk}/deletions/", {"prompt": items[1].prompt_id}, format="json")
    assert deleted.status_code == 200 and deleted.json()["counts"]["judgments"] == 2
    snapshot_create(campaign=other, created_by=other_admin)
    mine = client.get("/api/v1/audit/").json()["results"]
    assert {e["campaign_id"] for e in mine} == {campaign.pk}
    only = client.get(f"/api/v1/audit/?campaign={campaign.pk}&action=data.deleted&actor={admin.pk}").json()
    assert [e["object_id"] for e in only["results"]] == [str(items[1].prompt_id)]
    assert client.get(f"/api/v1/audit/?campaign={other.pk}").status_code == 404
    assert client_for(a1).get(f"/api/v1/audit/?campaign={campaign.pk}").status_code == 403
    assert client_for(a1).post(f"/api/v1/campaigns/{campaign.pk}/deletions/", {"annotator": a1.pk},
                               format="json").status_code == 403
    staff = client_for(UserFactory(is_staff=True)).get("/api/v1/audit/").json()["results"]
    assert {campaign.pk, other.pk} <= {e["campaign_id"] for e in staff}
    bad = client.post(f"/api/v1/campaigns/{campaign.pk}/deletions/", {}, format="json")
    assert bad.status_code == 400 and "exactly one" in bad.json()["detail"]
