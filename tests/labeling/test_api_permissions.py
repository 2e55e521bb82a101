"""The permission matrix: every endpoint of the labeling API against every kind of caller.

Callers: anonymous, an outsider (annotator of another campaign), the campaign's annotator, researcher and
admin, and site staff. Objects of a campaign the caller can't see are 404, never 403 (ids leak nothing);
a campaign member without the needed role gets 403 with a message naming the role."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from labeling.models import Role
from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput
from tests.conftest import client_for
from tests.factories import CampaignFactory, ItemFactory, UserFactory, member

pytestmark = pytest.mark.django_db

CALLERS = ["anonymous", "outsider", "annotator", "researcher", "admin", "staff"]


@dataclass
class World:
    campaign: object
    item: object
    users: dict
    slot: object  # a slot leased to the annotator
    judgment: object  # a judgment by the annotator, still undoable
    other_user: object


@pytest.fixture
def world() -> World:
    campaign = CampaignFactory(overlap=2)
    item, judged_item = ItemFactory(campaign=campaign), ItemFactory(campaign=campaign)
    users = {
        "outsider": member(CampaignFactory()),
        "annotator": member(campaign, Role.ANNOTATOR),
        "researcher": member(campaign, Role.RESEARCHER),
        "admin": member(campaign, Role.ADMIN),
        "staff": UserFactory(is_staff=True),
    }
    first = assignment_next(user=users["annotator"], campaign=campaign)
    judgment = judgment_record(
        user=users["annotator"], assignment_id=first.pk, data=JudgmentInput(winner=first.shown_order[0], client_id=uuid.uuid4())
    ).judgment
    slot = assignment_next(user=users["annotator"], campaign=campaign)
    assert {first.item_id, slot.item_id} == {item.pk, judged_item.pk}
    return World(campaign, item, users, slot, judgment, other_user=member(campaign, Role.ANNOTATOR))


@dataclass
class Case:
    method: str
    path: Callable[[World], str]
    body: Callable[[World], dict] | None
    expect: dict  # caller -> status; callers not named expect `default`
    default: int = 404


def c(path: str) -> Callable[[World], str]:
    return lambda w: path.format(c=w.campaign.pk, i=w.item.pk, s=w.slot.pk, j=w.judgment.pk, u=w.other_user.pk, r=w.campaign.rounds.first().pk)


MEMBERS_200 = {"annotator": 200, "researcher": 200, "admin": 200, "staff": 200}
READERS_200 = {"annotator": 403, "researcher": 200, "admin": 200, "staff": 200}
ADMIN_ONLY = {"annotator": 403, "researcher": 403}

CASES = {
    "list campaigns": Case("get", c("/api/v1/campaigns/"), None, {"outsider": 200, **MEMBERS_200}),
    "create campaign": Case(
        "post", c("/api/v1/campaigns/"), lambda w: {"name": f"new {uuid.uuid4()}"},
        {"outsider": 403, "annotator": 403, "researcher": 403, "admin": 403, "staff": 201},
    ),
    "read campaign": Case("get", c("/api/v1/campaigns/{c}/"), None, MEMBERS_200),
    "edit campaign": Case("patch", c("/api/v1/campaigns/{c}/"), lambda w: {"overlap": 3}, {**ADMIN_ONLY, "admin": 200, "staff": 200}),
    "stats": Case("get", c("/api/v1/campaigns/{c}/stats/"), None, READERS_200),
    "my progress": Case("get", c("/api/v1/campaigns/{c}/progress/"), None, MEMBERS_200),
    "list members": Case("get", c("/api/v1/campaigns/{c}/members/"), None, {**ADMIN_ONLY, "admin": 200, "staff": 200}),
    "add member": Case(
        "post", c("/api/v1/campaigns/{c}/members/"), lambda w: {"username": w.other_user.username, "role": "researcher"},
        {**ADMIN_ONLY, "admin": 201, "staff": 201},
    ),
    "remove member": Case("delete", c("/api/v1/campaigns/{c}/members/{u}/annotator/"), None, {**ADMIN_ONLY, "admin": 204, "staff": 204}),
    "pause member": Case(
        "post", c("/api/v1/campaigns/{c}/members/{u}/pause/"), lambda w: {"paused": True, "reason": "gold"},
        {**ADMIN_ONLY, "admin": 200, "staff": 200},
    ),
    "list rounds": Case("get", c("/api/v1/campaigns/{c}/rounds/"), None, MEMBERS_200),
    "open round": Case("post", c("/api/v1/campaigns/{c}/rounds/"), lambda w: {}, {**ADMIN_ONLY, "admin": 201, "staff": 201}),
    "close round": Case("post", c("/api/v1/campaigns/{c}/rounds/{r}/close/"), None, {**ADMIN_ONLY, "admin": 200, "staff": 200}),
    "list prompts": Case("get", c("/api/v1/campaigns/{c}/prompts/"), None, READERS_200),
    "list items": Case("get", c("/api/v1/campaigns/{c}/items/"), None, READERS_200),
    # The annotator holds no slot of w.item? They may: they judged one of the two items and lease the other,
    # so either way they can see it; an annotator who never touched it cannot (tested separately below).
    "read item": Case("get", c("/api/v1/items/{i}/"), None, MEMBERS_200),
    "list judgments": Case("get", c("/api/v1/campaigns/{c}/judgments/"), None, MEMBERS_200),
    "next item": Case("post", c("/api/v1/campaigns/{c}/queue/next/"), None, {"annotator": 200, "researcher": 403, "admin": 403, "staff": 200}),
    "read assignment": Case("get", c("/api/v1/assignments/{s}/"), None, {"annotator": 200}),
    "submit": Case(
        "post", c("/api/v1/assignments/{s}/submit/"), lambda w: {"winner": w.slot.shown_order[0], "client_id": str(uuid.uuid4())},
        {"annotator": 201, "staff": 409},
    ),
    # Staff hold every role, so they see the slot exists: someone else's lease is a conflict, not a 404.
    "skip": Case("post", c("/api/v1/assignments/{s}/skip/"), lambda w: {}, {"annotator": 204, "staff": 409}),
    "release": Case("post", c("/api/v1/assignments/{s}/release/"), None, {"annotator": 204, "staff": 409}),
    "undo": Case("post", c("/api/v1/judgments/{j}/undo/"), None, {"annotator": 200}),
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("name", list(CASES))
def test_permission_matrix(world, name, caller):
    case = CASES[name]
    if caller == "anonymous":
        from rest_framework.test import APIClient

        client, expected = APIClient(), 401
    else:
        client, expected = client_for(world.users[caller]), case.expect.get(caller, case.default)
    body = case.body(world) if case.body else None
    response = getattr(client, case.method)(case.path(world), body, format="json")
    assert response.status_code == expected, f"{name} as {caller}: {response.status_code} {response.content[:300]!r}"
    if expected in (403, 404):
        assert response.json()["detail"], "refusals say why"


def test_annotator_cannot_read_an_item_they_never_held(world):
    stranger = member(world.campaign, Role.ANNOTATOR)
    response = client_for(stranger).get(f"/api/v1/items/{world.item.pk}/")
    assert response.status_code == 404


def test_annotator_sees_only_their_own_judgments(world):
    other = world.other_user
    slot = assignment_next(user=other, campaign=world.campaign)
    judgment_record(user=other, assignment_id=slot.pk, data=JudgmentInput(tie=True))
    own = client_for(world.users["annotator"]).get(f"/api/v1/campaigns/{world.campaign.pk}/judgments/").json()
    assert {j["annotator"] for j in own["results"]} == {world.users["annotator"].username}
    everyone = client_for(world.users["researcher"]).get(f"/api/v1/campaigns/{world.campaign.pk}/judgments/").json()
    assert everyone["count"] == 2


def test_another_annotator_submitting_a_leased_slot_is_a_conflict(world):
    response = client_for(world.other_user).post(
        f"/api/v1/assignments/{world.slot.pk}/submit/", {"winner": world.slot.shown_order[0]}, format="json"
    )
    assert response.status_code == 409
    assert "another annotator" in response.json()["detail"]
