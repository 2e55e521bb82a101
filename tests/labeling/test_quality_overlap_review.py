"""Dynamic overlap, per-item consensus, the review queue and adjudication, agreement and the leaderboard over
stored judgments."""
from __future__ import annotations

import uuid

import pytest

from labeling.errors import Conflict
from labeling.models import Assignment, ComparisonItem, Judgment
from labeling.quality.agreement import cohen_kappa, krippendorff_alpha
from labeling.selectors_quality import agreement_report, item_consensus, leaderboard, review_queue
from labeling.services.quality_checks import judgment_adjudicate
from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput
from tests.factories import CampaignFactory, ItemFactory, member

pytestmark = pytest.mark.django_db


def _canonical(item):
    return list(item.item_responses.order_by("position").values_list("response_id", flat=True))


def _judge(user, campaign, choice, strength=None):
    """Judge the next item: choice "A"/"B" (canonical position), "tie"; returns the item id."""
    slot = assignment_next(user=user, campaign=campaign)
    ids = _canonical(slot.item)
    if choice == "tie":
        data = JudgmentInput(tie=True, client_id=uuid.uuid4())
    else:
        data = JudgmentInput(winner=ids["AB".index(choice)], strength=strength, client_id=uuid.uuid4())
    judgment_record(user=user, assignment_id=slot.pk, data=data)
    return slot.item_id


def test_dynamic_overlap_adds_a_slot_only_while_the_item_is_contested():
    campaign = CampaignFactory(overlap=2, overlap_mode="dynamic", overlap_max=3, consensus_threshold=0.9)
    contested, agreed = ItemFactory(campaign=campaign), ItemFactory(campaign=campaign)
    a, b, c = (member(campaign) for _ in range(3))
    _judge(a, campaign, "A")
    _judge(b, campaign, "B")  # item 1: split 1-1, confidence 0.46 -> a third slot
    assert Assignment.objects.filter(item=contested).count() == 3
    contested.refresh_from_db()
    assert contested.status == ComparisonItem.Status.OPEN
    assert _judge(c, campaign, "A") == contested.pk  # the new slot goes to a third annotator
    assert Assignment.objects.filter(item=contested).count() == 3  # overlap_max reached: no more
    _judge(a, campaign, "A")
    _judge(b, campaign, "A")  # item 2: agreement, confidence 0.95 -> no slot
    assert Assignment.objects.filter(item=agreed).count() == 2
    assert ComparisonItem.objects.filter(campaign=campaign, status=ComparisonItem.Status.COMPLETE).count() == 2


def test_fixed_overlap_stays_the_default():
    campaign = CampaignFactory(overlap=2)
    item = ItemFactory(campaign=campaign)
    a, b = member(campaign), member(campaign)
    _judge(a, campaign, "A")
    _judge(b, campaign, "B")
    assert Assignment.objects.filter(item=item).count() == 2
    assert assignment_next(user=member(campaign), campaign=campaign) is None


def test_contested_items_go_to_review_and_the_adjudicated_decision_is_final():
    campaign = CampaignFactory(overlap=2, review_threshold=0.7)
    contested, agreed = ItemFactory(campaign=campaign), ItemFactory(campaign=campaign)
    a, b = member(campaign), member(campaign)
    _judge(a, campaign, "A"), _judge(b, campaign, "B")
    _judge(a, campaign, "B"), _judge(b, campaign, "B")
    queue = review_queue(campaign=campaign)
    assert [row["item"] for row in queue] == [contested.pk] and queue[0]["label"] is None
    lead = member(campaign)
    judgment = judgment_adjudicate(user=lead, campaign=campaign, item=contested,
                                   data=JudgmentInput(winner=_canonical(contested)[1], rationale="B cites a source"))
    assert judgment.source == Judgment.Source.ADJUDICATED and judgment.assignment_id is None
    assert review_queue(campaign=campaign) == []
    for method in ("majority", "dawid_skene"):
        consensus = item_consensus(campaign=campaign, method=method)
        assert consensus[contested.pk].label == "B" and consensus[contested.pk].confidence == 1.0
        assert consensus[agreed.pk].label == "B"
    assert Judgment.objects.filter(item=contested, source=Judgment.Source.HUMAN).count() == 2  # kept
    with pytest.raises(Conflict, match="already adjudicated"):
        judgment_adjudicate(user=lead, campaign=campaign, item=contested, data=JudgmentInput(tie=True))


def test_agreement_report_matches_the_statistics_on_hand_built_units():
    campaign = CampaignFactory(overlap=2)
    items = [ItemFactory(campaign=campaign) for _ in range(4)]
    a, b = member(campaign, username="ann-a"), member(campaign, username="ann-b")
    for choice in ("A", "A", "B", "tie"):
        _judge(a, campaign, choice, strength=2 if choice != "tie" else None)
    for choice in ("A", "B", "B", "tie"):
        _judge(b, campaign, choice, strength=1 if choice != "tie" else None)
    report = agreement_report(campaign=campaign, n_boot=50)
    pair = report["pairs"][0]
    assert pair["n_items"] == 4 and pair["percent_agreement"] == 0.75
    expected_kappa = cohen_kappa([("A", "A"), ("A", "B"), ("B", "B"), ("tie", "tie")])
    assert pair["cohen_kappa"]["value"] == pytest.approx(expected_kappa, abs=1e-4)
    assert round(expected_kappa, 3) == 0.636
    signed = {i.pk: v for i, v in zip(items, [{1: 2, 2: 1}, {1: 2, 2: -1}, {1: -2, 2: -1}, {1: 0, 2: 0}], strict=True)}
    units = {item: {a.pk if k == 1 else b.pk: v for k, v in values.items()} for item, values in signed.items()}
    assert report["strength"]["krippendorff_alpha_ordinal"]["value"] == pytest.approx(
        krippendorff_alpha(units, "ordinal"), abs=1e-4
    )
    assert report["items_with_overlap"] == 4 and report["rounds"][0]["judgments"] == 8


def test_ranking_agreement_uses_ranks_per_response():
    campaign = CampaignFactory(overlap=2, pairwise_enabled=False, ranking_enabled=True)
    item = ItemFactory(campaign=campaign, n_responses=3)
    ids = _canonical(item)
    for user, ranking in ((member(campaign), [[ids[0]], [ids[1]], [ids[2]]]), (member(campaign), [[ids[0]], [ids[2], ids[1]]])):
        slot = assignment_next(user=user, campaign=campaign)
        judgment_record(user=user, assignment_id=slot.pk, data=JudgmentInput(ranking=ranking))
    report = agreement_report(campaign=campaign, n_boot=0)
    # Units (item, response): ranks (1, 1), (2, 2), (3, 2): ordinal alpha on those three units.
    expected = krippendorff_alpha({0: {1: 1, 2: 1}, 1: {1: 2, 2: 2}, 2: {1: 3, 2: 2}}, "ordinal")
    assert report["ranking"]["krippendorff_alpha_ordinal"]["value"] == pytest.approx(expected, abs=1e-4)


def test_leaderboard_rates_model_versions_from_pairwise_and_ranking_judgments():
    campaign = CampaignFactory(overlap=1, ranking_enabled=True)
    user = member(campaign)
    for n in range(6):
        item = ItemFactory(campaign=campaign)
        old, new = (link.response for link in item.item_responses.order_by("position"))
        type(old).objects.filter(pk=old.pk).update(model_name="v1")
        type(new).objects.filter(pk=new.pk).update(model_name="v2")
        slot = assignment_next(user=user, campaign=campaign)
        winner = new.pk if n < 5 else old.pk
        judgment_record(user=user, assignment_id=slot.pk, data=JudgmentInput(winner=winner))
    three = ItemFactory(campaign=campaign, n_responses=3)
    responses = [link.response for link in three.item_responses.order_by("position")]
    for response, name in zip(responses, ["v1", "v2", "v3"], strict=True):
        type(response).objects.filter(pk=response.pk).update(model_name=name)
    slot = assignment_next(user=user, campaign=campaign)
    judgment_record(user=user, assignment_id=slot.pk,
                    data=JudgmentInput(ranking=[[responses[2].pk], [responses[1].pk, responses[0].pk]]))
    board = leaderboard(campaign=campaign, n_boot=50)
    assert board["comparisons"] == 6 + 3
    names = [m["name"] for m in board["models"]]
    assert names.index("v2") < names.index("v1")
    v2 = next(m for m in board["models"] if m["name"] == "v2")
    assert v2["wins"] == 5.5 and v2["comparisons"] == 8  # 5 pairwise wins, a ranking tie with v1, a loss to v3
    assert leaderboard(campaign=campaign, method="elo", n_boot=20)["models"][0]["rating"] is not None


def test_quality_checks_keep_submit_a_handful_of_queries(django_assert_max_num_queries):
    """Dynamic overlap and gold mixing on, the item's last slot filled: still a bounded number of queries."""
    campaign = CampaignFactory(overlap=1, overlap_mode="dynamic", overlap_max=3, gold_rate=0.3)
    for _ in range(5):
        ItemFactory(campaign=campaign)
    annotator = member(campaign)
    with django_assert_max_num_queries(10):
        slot = assignment_next(user=annotator, campaign=campaign)
    data = JudgmentInput(winner=slot.shown_order[0], client_id=uuid.uuid4(), time_spent_ms=5000)
    with django_assert_max_num_queries(18):
        judgment_record(user=annotator, assignment_id=slot.pk, data=data)
    assert Assignment.objects.filter(item_id=slot.item_id).count() == 2  # one vote at 0.75 < 0.9: one more slot
