"""The annotator queue: next / submit / skip / release / undo, through the services."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from labeling.errors import Conflict, NotFound, PermissionDenied, ValidationError
from labeling.models import Assignment, Campaign, ComparisonItem, ItemSkip, Judgment, Membership, Role
from labeling.services.queue import (
    assignment_next,
    assignment_release,
    assignment_skip,
    judgment_record,
    judgment_undo,
)
from labeling.services.validation import JudgmentInput
from tests.factories import CampaignFactory, ItemFactory, member

pytestmark = pytest.mark.django_db


def _win(slot, index=0, **kw):
    return JudgmentInput(winner=slot.shown_order[index], client_id=uuid.uuid4(), **kw)


def test_next_leases_a_slot_with_a_recorded_random_order():
    item = ItemFactory()
    annotator = member(item.campaign)
    slot = assignment_next(user=annotator, campaign=item.campaign)
    assert slot.item_id == item.pk and slot.annotator == annotator and slot.state == Assignment.State.LEASED
    assert sorted(slot.shown_order) == sorted(item.responses.values_list("id", flat=True))
    assert slot.lease_expires_at > timezone.now() + timedelta(seconds=item.campaign.lease_seconds - 5)


def test_shown_order_is_randomised_across_assignments():
    campaign = CampaignFactory(overlap=1, ranking_enabled=True)
    items = [ItemFactory(campaign=campaign, n_responses=4) for _ in range(12)]
    annotator = member(campaign)
    orders = set()
    for _ in items:
        slot = assignment_next(user=annotator, campaign=campaign)
        canonical = list(slot.item.item_responses.values_list("response_id", flat=True))
        orders.add(tuple(canonical.index(r) for r in slot.shown_order))
        judgment_record(user=annotator, assignment_id=slot.pk, data=JudgmentInput(ranking=[[r] for r in slot.shown_order]))
    assert len(orders) > 1, "12 four-way items all shown in the same order"


def test_next_returns_the_same_slot_until_it_is_judged():
    item = ItemFactory()
    annotator = member(item.campaign)
    first = assignment_next(user=annotator, campaign=item.campaign)
    again = assignment_next(user=annotator, campaign=item.campaign)
    assert again.pk == first.pk and again.shown_order == first.shown_order


def test_overlap_k_gives_each_item_to_k_different_annotators_and_no_more():
    campaign = CampaignFactory(overlap=2)
    item = ItemFactory(campaign=campaign)
    a, b, c = (member(campaign) for _ in range(3))
    for user in (a, b):
        slot = assignment_next(user=user, campaign=campaign)
        assert slot.item_id == item.pk
        judgment_record(user=user, assignment_id=slot.pk, data=_win(slot))
    assert assignment_next(user=c, campaign=campaign) is None
    item.refresh_from_db()
    assert item.status == ComparisonItem.Status.COMPLETE
    assert Judgment.objects.filter(item=item).count() == 2


def test_an_annotator_never_gets_an_item_twice():
    campaign = CampaignFactory(overlap=3)
    ItemFactory(campaign=campaign)
    annotator = member(campaign)
    slot = assignment_next(user=annotator, campaign=campaign)
    judgment_record(user=annotator, assignment_id=slot.pk, data=_win(slot))
    assert assignment_next(user=annotator, campaign=campaign) is None


def test_expired_lease_returns_the_slot_to_the_pool():
    campaign = CampaignFactory(overlap=1)
    ItemFactory(campaign=campaign)
    slow, fast = member(campaign), member(campaign)
    slot = assignment_next(user=slow, campaign=campaign)
    assert assignment_next(user=fast, campaign=campaign) is None
    Assignment.objects.filter(pk=slot.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    taken = assignment_next(user=fast, campaign=campaign)
    assert taken.pk == slot.pk and taken.annotator == fast
    with pytest.raises(Conflict, match="another annotator has taken this slot"):
        judgment_record(user=slow, assignment_id=slot.pk, data=_win(slot))


def test_submit_after_expiry_is_accepted_while_the_slot_is_still_yours():
    item = ItemFactory()
    annotator = member(item.campaign)
    slot = assignment_next(user=annotator, campaign=item.campaign)
    Assignment.objects.filter(pk=slot.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=5))
    result = judgment_record(user=annotator, assignment_id=slot.pk, data=_win(slot))
    assert result.created and result.judgment.assignment_id == slot.pk


def test_retried_submit_with_same_client_id_returns_the_first_judgment():
    item = ItemFactory()
    annotator = member(item.campaign)
    slot = assignment_next(user=annotator, campaign=item.campaign)
    data = _win(slot, strength=2)
    first = judgment_record(user=annotator, assignment_id=slot.pk, data=data)
    retry = judgment_record(user=annotator, assignment_id=slot.pk, data=data)
    assert first.created and not retry.created
    assert retry.judgment.pk == first.judgment.pk
    assert Judgment.objects.count() == 1


def test_client_id_reused_for_another_assignment_is_a_conflict():
    campaign = CampaignFactory()
    ItemFactory(campaign=campaign)
    ItemFactory(campaign=campaign)
    annotator = member(campaign)
    slot = assignment_next(user=annotator, campaign=campaign)
    data = _win(slot)
    judgment_record(user=annotator, assignment_id=slot.pk, data=data)
    other = assignment_next(user=annotator, campaign=campaign)
    with pytest.raises(Conflict, match="client_id"):
        judgment_record(user=annotator, assignment_id=other.pk, data=JudgmentInput(winner=other.shown_order[0], client_id=data.client_id))


def test_second_submit_with_a_new_client_id_is_refused():
    item = ItemFactory()
    annotator = member(item.campaign)
    slot = assignment_next(user=annotator, campaign=item.campaign)
    judgment_record(user=annotator, assignment_id=slot.pk, data=_win(slot))
    with pytest.raises(Conflict, match="already judged"):
        judgment_record(user=annotator, assignment_id=slot.pk, data=_win(slot, 1))


def test_skip_never_offers_the_item_again_but_release_does():
    campaign = CampaignFactory()
    ItemFactory(campaign=campaign)
    annotator = member(campaign)
    slot = assignment_next(user=annotator, campaign=campaign)
    assignment_release(user=annotator, assignment_id=slot.pk)
    again = assignment_next(user=annotator, campaign=campaign)
    assert again.pk == slot.pk
    assignment_skip(user=annotator, assignment_id=again.pk, reason="not my language")
    assert ItemSkip.objects.filter(annotator=annotator).count() == 1
    assert assignment_next(user=annotator, campaign=campaign) is None
    assert assignment_next(user=member(campaign), campaign=campaign).pk == slot.pk


def test_undo_reopens_the_slot_for_the_same_annotator():
    item = ItemFactory()
    annotator = member(item.campaign)
    slot = assignment_next(user=annotator, campaign=item.campaign)
    judgment = judgment_record(user=annotator, assignment_id=slot.pk, data=_win(slot)).judgment
    reopened = judgment_undo(user=annotator, judgment_id=judgment.pk)
    assert reopened.pk == slot.pk and reopened.state == Assignment.State.LEASED
    assert not Judgment.objects.exists()
    item.refresh_from_db()
    assert item.status == ComparisonItem.Status.OPEN
    judgment_record(user=annotator, assignment_id=slot.pk, data=_win(slot, 1))
    assert Judgment.objects.get().winner_id == slot.shown_order[1]


def test_undo_after_the_lease_expired_is_refused():
    item = ItemFactory()
    annotator = member(item.campaign)
    slot = assignment_next(user=annotator, campaign=item.campaign)
    judgment = judgment_record(user=annotator, assignment_id=slot.pk, data=_win(slot)).judgment
    Assignment.objects.filter(pk=slot.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(Conflict, match="no longer be undone"):
        judgment_undo(user=annotator, judgment_id=judgment.pk)


def test_someone_elses_assignment_is_not_found():
    item = ItemFactory()
    annotator = member(item.campaign)
    outsider = member(CampaignFactory())
    slot = assignment_next(user=annotator, campaign=item.campaign)
    with pytest.raises(NotFound):
        judgment_record(user=outsider, assignment_id=slot.pk, data=_win(slot))
    with pytest.raises(NotFound):
        assignment_skip(user=outsider, assignment_id=slot.pk)


def test_researcher_cannot_take_items():
    item = ItemFactory()
    researcher = member(item.campaign, role=Role.RESEARCHER)
    with pytest.raises(PermissionDenied, match="annotator"):
        assignment_next(user=researcher, campaign=item.campaign)


def test_paused_annotator_gets_no_items_and_is_told_why():
    item = ItemFactory()
    annotator = member(item.campaign)
    Membership.objects.filter(user=annotator).update(paused=True, pause_reason="gold accuracy below 0.6")
    with pytest.raises(PermissionDenied, match="gold accuracy"):
        assignment_next(user=annotator, campaign=item.campaign)


def test_paused_campaign_hands_out_nothing():
    item = ItemFactory(campaign=CampaignFactory(status=Campaign.Status.PAUSED))
    with pytest.raises(Conflict, match="paused"):
        assignment_next(user=member(item.campaign), campaign=item.campaign)


def test_closed_round_leaves_the_queue():
    item = ItemFactory()
    item.round.status = "closed"
    item.round.save()
    assert assignment_next(user=member(item.campaign), campaign=item.campaign) is None


def test_invalid_judgment_is_refused_and_the_slot_stays_leased():
    item = ItemFactory()
    annotator = member(item.campaign)
    slot = assignment_next(user=annotator, campaign=item.campaign)
    with pytest.raises(ValidationError, match="strength goes only with a winner"):
        judgment_record(user=annotator, assignment_id=slot.pk, data=JudgmentInput(tie=True, strength=2))
    slot.refresh_from_db()
    assert slot.state == Assignment.State.LEASED and not Judgment.objects.exists()


def test_next_is_a_handful_of_queries(django_assert_max_num_queries):
    campaign = CampaignFactory(overlap=3)
    for _ in range(30):
        ItemFactory(campaign=campaign)
    annotator = member(campaign)
    warm = member(campaign)  # the first call on a connection also prepares its statements (PostgreSQL)
    judgment_record(user=warm, assignment_id=(w := assignment_next(user=warm, campaign=campaign)).pk, data=_win(w))
    # Transaction statements included. On PostgreSQL next reads the pause and leases in one statement each, and
    # submit locks and then writes everything (slot, judgment, item status, streak read) in one statement;
    # elsewhere (SQLite) renewing and leasing, and the four writes, are separate statements.
    pg = connection.vendor == "postgresql"
    with django_assert_max_num_queries(4 if pg else 5):
        slot = assignment_next(user=annotator, campaign=campaign)
    with django_assert_max_num_queries(4 if pg else 7):
        judgment_record(user=annotator, assignment_id=slot.pk, data=_win(slot))


def test_exclude_prefetches_more_items_up_to_the_lease_cap():
    campaign = CampaignFactory()
    for _ in range(5):
        ItemFactory(campaign=campaign)
    annotator = member(campaign)
    current = assignment_next(user=annotator, campaign=campaign)
    prefetched = assignment_next(user=annotator, campaign=campaign, exclude={current.pk})
    assert prefetched.pk != current.pk and prefetched.item_id != current.item_id
    third = assignment_next(user=annotator, campaign=campaign, exclude={current.pk, prefetched.pk})
    assert third.item_id not in (current.item_id, prefetched.item_id)
    assert assignment_next(user=annotator, campaign=campaign, exclude={current.pk, prefetched.pk, third.pk}) is None
    assignment_release(user=annotator, assignment_id=third.pk)
    # Without exclude (a reload), the annotator gets back what they hold, oldest first.
    assert assignment_next(user=annotator, campaign=campaign).pk == current.pk
    judgment_record(user=annotator, assignment_id=current.pk, data=_win(current))
    assert assignment_next(user=annotator, campaign=campaign, exclude={prefetched.pk}).item_id not in (
        current.item_id, prefetched.item_id
    )
