"""The labeling API end to end over HTTP: token auth, the annotator loop, error shapes, the schema."""
from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from labeling.models import Judgment, Role
from tests.conftest import client_for
from tests.factories import CampaignFactory, ItemFactory, UserFactory, member

pytestmark = pytest.mark.django_db


def test_token_login_then_judge_a_campaign_over_http(api):
    campaign = CampaignFactory(overlap=1, ranking_enabled=True)
    ItemFactory(campaign=campaign)
    ItemFactory(campaign=campaign, n_responses=3)
    user = member(campaign, Role.ANNOTATOR, username="ann")
    token = api.post("/api/v1/auth/token/", {"username": "ann", "password": "pw-Loopwise-1"}, format="json").json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    done = []
    while (assignment := api.post(f"/api/v1/campaigns/{campaign.pk}/queue/next/", {}, format="json").json()["assignment"]):
        ids = [r["id"] for r in assignment["responses"]]
        assert all(r["html"] for r in assignment["responses"]), "responses come with sanitised HTML"
        body = {"winner": ids[1], "strength": 3} if assignment["kind"] == "pairwise" else {"ranking": [[ids[2]], [ids[0], ids[1]]]}
        response = api.post(f"/api/v1/assignments/{assignment['id']}/submit/", {**body, "client_id": str(uuid.uuid4())}, format="json")
        assert response.status_code == 201, response.content
        done.append(response.json())
    assert len(done) == 2 and Judgment.objects.filter(annotator=user).count() == 2
    progress = api.get(f"/api/v1/campaigns/{campaign.pk}/progress/").json()
    assert progress["mine_total"] == 2 and progress["items_complete"] == 2


def test_retried_submit_over_http_returns_200_and_the_same_judgment():
    item = ItemFactory()
    client = client_for(member(item.campaign))
    slot = client.post(f"/api/v1/campaigns/{item.campaign.pk}/queue/next/", {}, format="json").json()["assignment"]
    body = {"tie": True, "client_id": str(uuid.uuid4())}
    first = client.post(f"/api/v1/assignments/{slot['id']}/submit/", body, format="json")
    retry = client.post(f"/api/v1/assignments/{slot['id']}/submit/", body, format="json")
    assert (first.status_code, retry.status_code) == (201, 200)
    assert first.json()["id"] == retry.json()["id"] and Judgment.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"winner": 1, "tie": True}, "winner", "exactly one of winner, tie or both_bad"),
        ({"tie": True, "strength": 2}, "strength", "strength goes only with a winner"),
        ({"winner": 999999}, "winner", "not one of this item's responses"),
        ({"ranking": [[1]]}, "ranking", "not a ranking"),
        ({"winner": "abc"}, "winner", "valid integer"),
        ({"tie": True, "client_id": "not-a-uuid"}, "client_id", "UUID"),
    ],
)
def test_bad_judgments_get_a_400_naming_the_field(body, field, text):
    item = ItemFactory()
    client = client_for(member(item.campaign))
    slot = client.post(f"/api/v1/campaigns/{item.campaign.pk}/queue/next/", {}, format="json").json()["assignment"]
    response = client.post(f"/api/v1/assignments/{slot['id']}/submit/", body, format="json")
    assert response.status_code == 400
    data = response.json()
    assert data["field"] == field and text in data["detail"], data


def test_rationale_required_by_the_campaign_is_enforced():
    item = ItemFactory(campaign=CampaignFactory(rationale="required"))
    client = client_for(member(item.campaign))
    slot = client.post(f"/api/v1/campaigns/{item.campaign.pk}/queue/next/", {}, format="json").json()["assignment"]
    url = f"/api/v1/assignments/{slot['id']}/submit/"
    assert client.post(url, {"tie": True, "rationale": "  "}, format="json").json()["field"] == "rationale"
    assert client.post(url, {"tie": True, "rationale": "Both say the same."}, format="json").status_code == 201


def test_empty_queue_answers_null_not_an_error():
    campaign = CampaignFactory()
    response = client_for(member(campaign)).post(f"/api/v1/campaigns/{campaign.pk}/queue/next/", {}, format="json")
    assert response.status_code == 200 and response.json() == {"assignment": None}


def test_staff_create_a_campaign_and_become_its_admin_with_round_one_open():
    staff = UserFactory(is_staff=True)
    response = client_for(staff).post("/api/v1/campaigns/", {"name": "RLHF round", "overlap": 3, "ranking_enabled": True}, format="json")
    assert response.status_code == 201, response.content
    campaign_id = response.json()["id"]
    rounds = client_for(staff).get(f"/api/v1/campaigns/{campaign_id}/rounds/").json()
    assert [(r["number"], r["status"]) for r in rounds] == [(1, "open")]
    dup = client_for(staff).post("/api/v1/campaigns/", {"name": "RLHF round"}, format="json")
    assert dup.status_code == 409 and dup.json()["field"] == "name"


def test_invalid_campaign_settings_are_refused_with_the_field():
    staff = UserFactory(is_staff=True)
    bad = client_for(staff).post(
        "/api/v1/campaigns/", {"name": "x", "pairwise_enabled": False, "ranking_enabled": False}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["field"] == "pairwise_enabled"
    bad = client_for(staff).post("/api/v1/campaigns/", {"name": "x", "overlap": 0}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "overlap"


def test_raising_overlap_adds_slots_to_open_items():
    campaign = CampaignFactory(overlap=1)
    item = ItemFactory(campaign=campaign)
    admin = member(campaign, Role.ADMIN)
    response = client_for(admin).patch(f"/api/v1/campaigns/{campaign.pk}/", {"overlap": 3}, format="json")
    assert response.status_code == 200
    assert item.assignments.count() == 3
    client_for(admin).patch(f"/api/v1/campaigns/{campaign.pk}/", {"overlap": 2}, format="json")
    assert item.assignments.count() == 2


def test_last_admin_cannot_be_removed():
    campaign = CampaignFactory()
    admin = member(campaign, Role.ADMIN)
    response = client_for(admin).delete(f"/api/v1/campaigns/{campaign.pk}/members/{admin.pk}/admin/")
    assert response.status_code == 409 and "at least one admin" in response.json()["detail"]


def test_token_works_for_scripts_and_anonymous_gets_401_with_a_challenge(api):
    campaign = CampaignFactory()
    user = member(campaign, Role.RESEARCHER)
    anonymous = api.get("/api/v1/campaigns/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert [c["id"] for c in api.get("/api/v1/campaigns/").json()["results"]] == [campaign.pk]


def test_openapi_schema_generates_and_docs_page_serves(client):
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "/api/v1/campaigns/{campaign_id}/queue/next/" in out.getvalue()
    user = UserFactory()
    client.force_login(user)
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/schema/").status_code == 200
