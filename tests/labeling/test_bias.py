"""The bias report: label balance, position bias, length bias, per annotator, metadata facets."""
from __future__ import annotations

import pytest

from labeling.models import Prompt, Response, Role
from labeling.services.snapshots import snapshot_create
from tests.conftest import client_for
from tests.factories import CampaignFactory, ItemFactory, member
from tests.labeling.test_snapshots import judge

pytestmark = pytest.mark.django_db


def test_report_measures_balance_position_length_annotators_and_facets():
    campaign = CampaignFactory()
    lefty, fair = member(campaign), member(campaign)
    for i in range(8):
        item = ItemFactory(campaign=campaign)
        responses = [link.response for link in item.item_responses.order_by("position")]
        Response.objects.filter(pk=responses[1].pk).update(text="a much longer second response " * 3)
        Prompt.objects.filter(pk=item.prompt_id).update(metadata={"language": "en" if i < 6 else "de"})
        shown = [responses[i % 2].pk, responses[1 - i % 2].pk]
        judge(item, lefty, winner=i % 2, shown=shown)  # always picks what was shown on the left
        judge(item, fair, winner=1, shown=shown)  # always picks the longer one
    snapshot = snapshot_create(campaign=campaign, created_by=None)
    bias = snapshot.manifest["bias"]
    assert bias["judgments"] == 16
    assert bias["label_balance"] == {"A": {"n": 4, "share": 0.25}, "B": {"n": 12, "share": 0.75}}
    assert bias["position_bias"]["left_wins"] == {"rate": 0.75, "n": 16}
    per = bias["position_bias"]["per_annotator"]
    assert sorted(v["rate"] for v in per.values()) == [0.5, 1.0]
    assert bias["length_bias"]["longer_wins"] == {"rate": 0.75, "n": 16}
    assert bias["facets"]["language"]["de"]["judgments"] == 4 and bias["facets"]["language"]["en"]["judgments"] == 12
    assert bias["facets"]["topic"] == {"(none)": {"judgments": 16, "labels": bias["label_balance"]}}
    researcher = member(campaign, Role.RESEARCHER)
    live = client_for(researcher).get(f"/api/v1/campaigns/{campaign.pk}/bias/").json()
    assert live["label_balance"] == bias["label_balance"] and set(live["annotators"]) == set(bias["annotators"])
    assert client_for(lefty).get(f"/api/v1/campaigns/{campaign.pk}/bias/").status_code == 403


def test_bias_page_renders_for_readers_and_escapes_metadata(client):
    campaign = CampaignFactory()
    annotator = member(campaign)
    item = ItemFactory(campaign=campaign)
    Prompt.objects.filter(pk=item.prompt_id).update(metadata={"topic": "<script>alert(1)</script>"})
    judge(item, annotator)
    client.force_login(member(campaign, Role.RESEARCHER))
    page = client.get(f"/campaigns/{campaign.pk}/bias/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Label balance" in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert" not in body
    client.force_login(annotator)
    assert client.get(f"/campaigns/{campaign.pk}/bias/").status_code == 403
