"""The quality endpoints: roles (404 outside, 403 for the wrong role), clear 400s, and each endpoint's shape."""
from __future__ import annotations

import pytest

from labeling.models import Judgment, QualityFlag, Role
from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput
from tests.conftest import client_for
from tests.factories import CampaignFactory, ItemFactory, member

pytestmark = pytest.mark.django_db

READ_PATHS = ["quality/agreement/", "quality/annotators/", "quality/gold-accuracy/", "quality/settings/",
              "quality/consensus/", "leaderboard/"]
ADMIN_PATHS = ["gold/", "quality/flags/", "review/"]


@pytest.fixture
def judged():
    """A campaign with overlap 2, three items judged by two annotators (they disagree on the first)."""
    campaign = CampaignFactory(overlap=2)
    items = [ItemFactory(campaign=campaign) for _ in range(3)]
    a, b = member(campaign), member(campaign)
    for user, picks in ((a, [0, 0, 1]), (b, [1, 0, 1])):
        for pick in picks:
            slot = assignment_next(user=user, campaign=campaign)
            winner = list(slot.item.item_responses.order_by("position").values_list("response_id", flat=True))[pick]
            judgment_record(user=user, assignment_id=slot.pk, data=JudgmentInput(winner=winner, time_spent_ms=100))
    return campaign, items, a


def test_quality_reads_are_for_admins_and_researchers(judged):
    campaign, _items, annotator = judged
    base = f"/api/v1/campaigns/{campaign.pk}/"
    researcher = client_for(member(campaign, Role.RESEARCHER))
    outsider = client_for(member(CampaignFactory(), Role.ADMIN))
    for path in READ_PATHS:
        assert researcher.get(base + path).status_code == 200, path
        assert client_for(annotator).get(base + path).status_code == 403, path
        assert outsider.get(base + path).status_code == 404, path
    for path in ADMIN_PATHS:
        assert researcher.get(base + path).status_code == 403, path
        assert client_for(member(campaign, Role.ADMIN)).get(base + path).status_code == 200, path


def test_agreement_and_leaderboard_payloads(judged):
    campaign, _items, _a = judged
    client = client_for(member(campaign, Role.RESEARCHER))
    body = client.get(f"/api/v1/campaigns/{campaign.pk}/quality/agreement/?n_boot=30").json()
    assert body["items_with_overlap"] == 3 and body["pairs"][0]["percent_agreement"] == pytest.approx(2 / 3, abs=1e-3)
    assert set(body["outcome"]["krippendorff_alpha_nominal"]) == {"value", "ci_low", "ci_high", "n_units"}
    bad = client.get(f"/api/v1/campaigns/{campaign.pk}/quality/agreement/?n_boot=99999")
    assert bad.status_code == 400 and bad.json()["field"] == "n_boot"
    board = client.get(f"/api/v1/campaigns/{campaign.pk}/leaderboard/?method=elo").json()
    assert board["method"] == "elo"
    by_consensus = client.get(f"/api/v1/campaigns/{campaign.pk}/leaderboard/?basis=consensus&n_boot=20").json()
    assert by_consensus["basis"] == "consensus" and by_consensus["comparisons"] == 0  # every response is "imported"
    wrong = client.get(f"/api/v1/campaigns/{campaign.pk}/leaderboard/?method=glicko")
    assert wrong.status_code == 400 and "method" in wrong.json()["detail"]
    consensus = client.get(f"/api/v1/campaigns/{campaign.pk}/quality/consensus/?method=majority").json()
    assert [c["votes"] for c in consensus["items"]] == [2, 2, 2] and consensus["items"][0]["label"] is None


def test_gold_marking_through_the_api(judged):
    campaign, items, _a = judged
    admin = client_for(member(campaign, Role.ADMIN))
    url = f"/api/v1/campaigns/{campaign.pk}/gold/"
    first = items[0].item_responses.order_by("position").first().response_id
    created = admin.post(url, {"item": items[0].pk, "winner": first}, format="json")
    assert created.status_code == 201 and created.json()["gold_answer"] == {"label": "A"}
    listed = admin.get(url).json()
    assert listed[0]["gold_judged"] == 2 and listed[0]["gold_correct"] == 1
    bad = admin.post(url, {"item": items[1].pk, "winner": 123456}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "winner"
    missing = admin.post(url, {"item": 999999, "tie": True}, format="json")
    assert missing.status_code == 404
    assert admin.delete(f"{url}{items[0].pk}/").status_code == 204
    assert admin.get(url).json() == []
    none = admin.post(f"{url}from-labels/", {"source_name": "nobody"}, format="json")
    assert none.status_code == 404 and none.json()["field"] == "source_name"
    per_day = client_for(member(campaign, Role.RESEARCHER)).get(
        f"/api/v1/campaigns/{campaign.pk}/quality/gold-accuracy/"
    )
    assert per_day.status_code == 200


def test_settings_flags_review_and_adjudication_through_the_api(judged):
    campaign, items, annotator = judged
    admin_user = member(campaign, Role.ADMIN)
    admin = client_for(admin_user)
    base = f"/api/v1/campaigns/{campaign.pk}/"
    bad = admin.patch(base + "quality/settings/", {"overlap_mode": "dynamic", "overlap_max": 1}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "overlap_max"
    ok = admin.patch(base + "quality/settings/", {"gold_rate": 0.1, "gold_min_accuracy": 0.7}, format="json")
    assert ok.status_code == 200 and ok.json()["gold_rate"] == 0.1
    assert client_for(member(campaign, Role.RESEARCHER)).patch(
        base + "quality/settings/", {"gold_rate": 0.2}, format="json"
    ).status_code == 403
    flags = admin.get(base + "quality/flags/?open=true&kind=too_fast").json()
    assert flags["count"] == 6  # every judgment took 100 ms, under the default 1500
    flag_id = flags["results"][0]["id"]
    assert admin.post(base + f"quality/flags/{flag_id}/resolve/").json()["resolved_at"] is not None
    assert QualityFlag.objects.filter(resolved_at__isnull=True).count() == 5
    review = admin.get(base + "review/").json()
    assert [row["item"] for row in review["items"]] == [items[0].pk]
    second = items[0].item_responses.order_by("position").last().response_id
    decided = admin.post(base + f"review/{items[0].pk}/", {"winner": second, "rationale": "B is right"}, format="json")
    assert decided.status_code == 201
    assert Judgment.objects.get(pk=decided.json()["id"]).source == Judgment.Source.ADJUDICATED
    again = admin.post(base + f"review/{items[0].pk}/", {"tie": True}, format="json")
    assert again.status_code == 409
    assert admin.get(base + "review/").json()["items"] == []
    annotators = admin.get(base + "quality/annotators/").json()
    row = next(r for r in annotators if r["annotator"] == annotator.pk)
    assert row["judgments"] == 3 and row["open_flags"] >= 2 and row["agreement_with_others"] == pytest.approx(2 / 3, abs=1e-3)


def test_dashboard_page_carries_the_quality_panels(judged):
    from django.test import Client

    campaign, _items, _a = judged
    browser = Client()
    browser.force_login(member(campaign, Role.RESEARCHER))
    page = browser.get(f"/campaigns/{campaign.pk}/dashboard/").content.decode()
    assert 'id="quality"' in page and "frontend/js/quality.js" in page and 'id="leaderboard"' in page
