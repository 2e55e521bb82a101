"""Gold items in the queue, gold scoring and its threshold, low-effort flags: through the queue services."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.errors import PermissionDenied, ValidationError
from labeling.models import Assignment, Campaign, GoldResult, Judgment, Membership, QualityFlag, Role
from labeling.services.items import ItemSpec, LabelSpec, PromptSpec, ResponseSpec, items_create
from labeling.services.quality import campaign_quality_update, gold_from_labels, gold_mark, gold_unmark
from labeling.services.queue import assignment_next, assignment_release, assignment_skip, judgment_record
from labeling.services.validation import JudgmentInput
from tests.factories import CampaignFactory, ItemFactory, member

pytestmark = pytest.mark.django_db


def _first_response(item):
    return item.item_responses.order_by("position").first().response_id


def _judge(user, slot, *, pick=0, ms=5000):
    """Pick the response at canonical position ``pick``."""
    canonical = list(slot.item.item_responses.order_by("position").values_list("response_id", flat=True))
    data = JudgmentInput(winner=canonical[pick], client_id=uuid.uuid4(), time_spent_ms=ms)
    return judgment_record(user=user, assignment_id=slot.pk, data=data).judgment


def test_a_gold_item_leaves_the_ordinary_queue_and_is_served_to_every_annotator_at_the_gold_rate():
    campaign = CampaignFactory(overlap=1)
    gold = ItemFactory(campaign=campaign)
    gold_mark(campaign=campaign, item=gold, answer=JudgmentInput(winner=_first_response(gold)))
    assert not Assignment.objects.filter(item=gold).exists()
    others = [ItemFactory(campaign=campaign) for _ in range(3)]
    campaign_quality_update(campaign=campaign, gold_rate=0.5)
    campaign.gold_rate = 1.0  # always, for a deterministic test (the API caps the rate at 0.5)
    a, b = member(campaign), member(campaign)
    for user in (a, b):
        slot = assignment_next(user=user, campaign=campaign)
        assert slot.item_id == gold.pk and slot.state == Assignment.State.LEASED
        _judge(user, slot)
    # Seen once each: afterwards only ordinary items, which the gold-served annotators still get.
    slot = assignment_next(user=a, campaign=campaign)
    assert slot.item_id in {o.pk for o in others}
    assert GoldResult.objects.filter(item=gold, correct=True).count() == 2


def test_the_annotator_payload_of_a_gold_item_has_the_same_keys_as_any_other(api):
    from tests.conftest import client_for

    campaign = CampaignFactory(overlap=1, gold_rate=1.0)  # the first request gets the gold item, the next not
    gold = ItemFactory(campaign=campaign)
    ItemFactory(campaign=campaign)
    gold_mark(campaign=campaign, item=gold, answer=JudgmentInput(tie=True))
    annotator = member(campaign)
    client = client_for(annotator)
    seen = {}
    for _ in range(2):
        body = client.post(f"/api/v1/campaigns/{campaign.pk}/queue/next/", {}, format="json").json()["assignment"]
        seen[body["item_id"] == gold.pk] = body
        client.post(f"/api/v1/assignments/{body['id']}/submit/", {"tie": True, "time_spent_ms": 4000}, format="json")
    assert set(seen) == {True, False}
    assert set(seen[True]) == set(seen[False]) and set(seen[True]["responses"][0]) == set(seen[False]["responses"][0])
    assert "gold" not in str(seen[True]).lower()
    detail = client.get(f"/api/v1/items/{gold.pk}/")
    assert detail.status_code in (200, 404) and "gold" not in detail.content.decode().lower()


def _gold_campaign(n_ordinary=3):
    campaign = CampaignFactory(overlap=2)
    gold = ItemFactory(campaign=campaign)
    gold_mark(campaign=campaign, item=gold, answer=JudgmentInput(winner=_first_response(gold)))
    ordinary = {ItemFactory(campaign=campaign).pk for _ in range(n_ordinary)}
    return campaign, gold, ordinary


def _served(user, campaign, gold_rate):
    campaign.gold_rate = gold_rate  # in memory: 1.0 always takes the gold path, 0.0 never does
    return assignment_next(user=user, campaign=campaign)


@pytest.mark.parametrize("give_back", ["skip", "release", "expire"])
def test_a_gold_slot_given_back_stays_gold_for_others_and_a_skipped_one_never_returns(give_back):
    campaign, gold, ordinary = _gold_campaign()
    first, other = member(campaign), member(campaign)
    slot = _served(first, campaign, 1.0)
    assert slot.item_id == gold.pk
    if give_back == "skip":
        assignment_skip(user=first, assignment_id=slot.pk)
    elif give_back == "release":
        assignment_release(user=first, assignment_id=slot.pk)
    else:
        Assignment.objects.filter(pk=slot.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    # The ordinary queue never hands the freed gold slot out: only ordinary items, however often one asks.
    seen = set()
    while (ordinary_slot := _served(other, campaign, 0.0)) is not None:
        seen.add(ordinary_slot.item_id)
        _judge(other, ordinary_slot)
    assert seen == ordinary
    # The gold path serves it to the other annotator, reusing the freed slot rather than making another.
    again = _served(other, campaign, 1.0)
    assert again.pk == slot.pk and again.item_id == gold.pk and again.annotator == other
    assert Assignment.objects.filter(item=gold).count() == 1
    _judge(other, again)
    assert GoldResult.objects.filter(item=gold, annotator=other).count() == 1
    if give_back == "skip":  # skipped: never offered to the same annotator again
        assert _served(first, campaign, 1.0).item_id in ordinary
        assert Assignment.objects.filter(item=gold).count() == 1


def test_a_released_gold_item_comes_back_to_its_annotator_as_an_ordinary_one_would():
    """Release must not tell gold apart: an ordinary released item stays in the annotator's queue, so a gold one
    does too (on a later gold turn)."""
    campaign, gold, _ = _gold_campaign()
    annotator = member(campaign)
    slot = _served(annotator, campaign, 1.0)
    assignment_release(user=annotator, assignment_id=slot.pk)
    again = _served(annotator, campaign, 1.0)
    assert again.item_id == gold.pk and again.pk == slot.pk


def test_skipping_or_releasing_a_gold_slot_answers_like_any_other_slot(api):
    from tests.conftest import client_for

    campaign, gold, _ = _gold_campaign()
    answers = {}
    for action in ("skip", "release"):
        client = client_for(member(campaign))
        for rate in (1.0, 0.0):
            Campaign.objects.filter(pk=campaign.pk).update(gold_rate=rate)
            body = client.post(f"/api/v1/campaigns/{campaign.pk}/queue/next/", {}, format="json").json()["assignment"]
            response = client.post(f"/api/v1/assignments/{body['id']}/{action}/", {}, format="json")
            answers[(action, body["item_id"] == gold.pk)] = (response.status_code, response.content)
    assert answers[("skip", True)] == answers[("skip", False)] == (204, b"")
    assert answers[("release", True)] == answers[("release", False)] == (204, b"")


def test_gold_accuracy_below_the_threshold_pauses_the_annotator_with_a_message():
    campaign = CampaignFactory(overlap=1, gold_rate=1.0, gold_min_accuracy=0.6, gold_min_judged=3, gold_action="pause")
    golds = [ItemFactory(campaign=campaign) for _ in range(4)]
    for g in golds:
        gold_mark(campaign=campaign, item=g, answer=JudgmentInput(winner=_first_response(g)))
    ItemFactory(campaign=campaign)
    careless = member(campaign)
    for _ in range(3):
        _judge(careless, assignment_next(user=careless, campaign=campaign), pick=1)
    membership = Membership.objects.get(campaign=campaign, user=careless, role=Role.ANNOTATOR)
    assert membership.paused and "gold accuracy 0%" in membership.pause_reason
    with pytest.raises(PermissionDenied, match="gold accuracy 0% on the last 3 gold items"):
        assignment_next(user=careless, campaign=campaign)
    assert Judgment.objects.filter(annotator=careless).count() == 3  # nothing deleted
    assert QualityFlag.objects.filter(annotator=careless, kind=QualityFlag.Kind.GOLD_ACCURACY).count() == 1


def test_gold_accuracy_flag_action_flags_once_and_keeps_the_annotator_working():
    campaign = CampaignFactory(overlap=1, gold_rate=1.0, gold_min_accuracy=0.6, gold_min_judged=2, gold_action="flag")
    for g in [ItemFactory(campaign=campaign) for _ in range(3)]:
        gold_mark(campaign=campaign, item=g, answer=JudgmentInput(winner=_first_response(g)))
    user = member(campaign)
    for _ in range(3):
        _judge(user, assignment_next(user=user, campaign=campaign), pick=1)
    assert not Membership.objects.get(campaign=campaign, user=user, role=Role.ANNOTATOR).paused
    assert QualityFlag.objects.filter(annotator=user, kind=QualityFlag.Kind.GOLD_ACCURACY).count() == 1


def test_correcting_a_gold_answer_rescores_and_unmarking_restores_slots():
    campaign = CampaignFactory(overlap=2)
    item = ItemFactory(campaign=campaign)
    user = member(campaign)
    _judge(user, assignment_next(user=user, campaign=campaign), pick=0)
    gold_mark(campaign=campaign, item=item, answer=JudgmentInput(winner=_first_response(item)))
    assert GoldResult.objects.get(item=item).correct
    assert Assignment.objects.filter(item=item).count() == 1  # the free slot left, the done one stays
    gold_mark(campaign=campaign, item=item, answer=JudgmentInput(tie=True))
    assert not GoldResult.objects.get(item=item).correct
    gold_unmark(campaign=campaign, item=item)
    assert not GoldResult.objects.filter(item=item).exists() and Assignment.objects.filter(item=item).count() == 2


def test_gold_answer_is_validated_like_a_judgment():
    campaign = CampaignFactory(allow_tie=False)
    item = ItemFactory(campaign=campaign)
    with pytest.raises(ValidationError, match="does not allow ties"):
        gold_mark(campaign=campaign, item=item, answer=JudgmentInput(tie=True))
    with pytest.raises(ValidationError, match="not one of this item's responses"):
        gold_mark(campaign=campaign, item=item, answer=JudgmentInput(winner=999_999))


def test_gold_from_imported_labels_uses_the_label_as_the_answer():
    campaign = CampaignFactory(overlap=1)
    round_ = campaign.rounds.first()
    specs = [
        ItemSpec(prompt=PromptSpec(text=f"q{i}"), responses=[ResponseSpec(text=f"a{i}"), ResponseSpec(text=f"b{i}")],
                 label=LabelSpec(ranking=[[1], [0]], source_name="experts"))
        for i in range(3)
    ]
    items_create(campaign=campaign, round=round_, specs=specs)
    assert gold_from_labels(campaign=campaign, source_name="experts") == 3
    golds = list(campaign.items.filter(is_gold=True))
    assert len(golds) == 3 and all(g.gold_answer == {"label": "B"} for g in golds)
    with pytest.raises(Exception, match="no imported labels"):
        gold_from_labels(campaign=campaign, source_name="nobody")


def test_low_effort_flags_too_fast_same_position_and_tie_streaks_never_delete_data():
    campaign = CampaignFactory(overlap=1, min_time_ms=1000, position_streak=4, tie_streak=3)
    for _ in range(10):
        ItemFactory(campaign=campaign)
    user = member(campaign)
    fast = _judge(user, assignment_next(user=user, campaign=campaign), ms=200)
    assert QualityFlag.objects.get(judgment=fast).kind == QualityFlag.Kind.TOO_FAST
    for _ in range(4):  # always the first shown response
        slot = assignment_next(user=user, campaign=campaign)
        judgment_record(user=user, assignment_id=slot.pk,
                        data=JudgmentInput(winner=slot.shown_order[0], client_id=uuid.uuid4(), time_spent_ms=3000))
    assert QualityFlag.objects.filter(annotator=user, kind=QualityFlag.Kind.SAME_POSITION).count() == 1
    for _ in range(4):
        slot = assignment_next(user=user, campaign=campaign)
        judgment_record(user=user, assignment_id=slot.pk, data=JudgmentInput(tie=True, time_spent_ms=3000))
    assert QualityFlag.objects.filter(annotator=user, kind=QualityFlag.Kind.TIE_STREAK).count() == 1  # once, not twice
    assert Judgment.objects.filter(annotator=user).count() == 9


def test_quality_settings_are_checked():
    campaign = CampaignFactory(overlap=3)
    with pytest.raises(ValidationError, match="overlap_max"):
        campaign_quality_update(campaign=campaign, overlap_mode="dynamic", overlap_max=2)
    with pytest.raises(ValidationError, match="gold_rate must be between"):
        campaign_quality_update(campaign=campaign, gold_rate=0.9)
    with pytest.raises(ValidationError, match="unknown quality settings"):
        campaign_quality_update(campaign=campaign, overlap=4)
