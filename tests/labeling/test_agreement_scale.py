"""The compact agreement_report (tuples streamed into arrays and count tables, bootstrap weights summed per
pattern as they are drawn) gives exactly what the previous dict-based implementation gave, kept in
tests/labeling/agreement_reference.py: same keys, same numbers, same bootstrap intervals for the seed."""
from __future__ import annotations

import random

import pytest

from labeling.models import Judgment, Round
from labeling.selectors_quality import agreement_report
from tests.factories import CampaignFactory, ItemFactory, UserFactory, member

from . import agreement_reference

pytestmark = pytest.mark.django_db


def _pairwise(rng, responses):
    """A realistic pairwise judgment: mostly a winner (strength or none), ties, some both-bad."""
    roll = rng.random()
    if roll < 0.15:
        return {"tie": True, "ranking": [responses]}
    if roll < 0.22:
        return {"both_bad": True, "ranking": [responses]}
    win = responses[0] if rng.random() < 0.6 else responses[1]
    lose = responses[1] if win == responses[0] else responses[0]
    return {"winner_id": win, "strength": rng.choice([None, 1, 2, 3]), "ranking": [[win], [lose]]}


def _ranking(rng, responses):
    order = rng.sample(responses, len(responses))
    groups, i = [], 0
    while i < len(order):
        size = 2 if rng.random() < 0.25 and i + 1 < len(order) else 1
        groups.append(order[i:i + size])
        i += size
    return {"ranking": groups}


def _campaign():
    """Two rounds; pairwise and 3-4 way ranking items; 1-4 annotators per item (singletons too); annotators
    whose ids sort differently as text than as numbers; re-judgments (the later one counts, a later both-bad
    keeps the earlier strength); judgments without an annotator and imported / adjudicated ones (not votes)."""
    rng = random.Random(20261122)
    campaign = CampaignFactory(overlap=2, ranking_enabled=True)
    first = campaign.rounds.get()
    second = Round.objects.create(campaign=campaign, number=2, name="Round 2")
    people = [member(campaign, user=UserFactory(id=pk)) for pk in (99_997, 99_998, 99_999, 100_000, 100_001, 100_011)]
    items = [ItemFactory(campaign=campaign, n_responses=2 if n % 4 else rng.choice([3, 4])) for n in range(70)]
    judgments = []
    for item in items:
        responses = list(item.item_responses.order_by("position").values_list("response_id", flat=True))
        make = _pairwise if len(responses) == 2 else _ranking
        for round_ in (first, second) if rng.random() < 0.4 else (first,):
            for person in rng.sample(people, rng.choice([1, 2, 2, 3, 3, 4])):
                for _ in range(2 if rng.random() < 0.1 else 1):
                    judgments.append(Judgment(campaign=campaign, round=round_, item=item, annotator=person,
                                              kind="pairwise" if make is _pairwise else "ranking", **make(rng, responses)))
            if rng.random() < 0.05:
                source = rng.choice([Judgment.Source.HUMAN, Judgment.Source.IMPORTED, Judgment.Source.ADJUDICATED])
                judgments.append(Judgment(campaign=campaign, round=round_, item=item, annotator=None, source=source,
                                          kind="pairwise" if make is _pairwise else "ranking", **make(rng, responses)))
    rng.shuffle(judgments)  # ids no longer follow item order: unit order is first appearance by id
    Judgment.objects.bulk_create(judgments)
    return campaign, first, second


def test_agreement_report_equals_the_previous_implementation_on_a_mixed_campaign():
    campaign, first, second = _campaign()
    for round_id in (None, first.pk, second.pk):
        for n_boot in (200, 0):
            new = agreement_report(campaign=campaign, round_id=round_id, n_boot=n_boot)
            old = agreement_reference.agreement_report(campaign=campaign, round_id=round_id, n_boot=n_boot)
            assert new == old, (round_id, n_boot)
    report = agreement_report(campaign=campaign, n_boot=200)
    # The campaign exercises what it claims to: overlap, several pairs and rounds, rankings, intervals.
    assert report["items_with_overlap"] > 30 and len(report["pairs"]) == 15 and len(report["rounds"]) == 2
    assert report["ranking"]["krippendorff_alpha_ordinal"]["n_units"] > 20
    assert report["outcome"]["krippendorff_alpha_nominal"]["ci_low"] is not None
    assert report["strength"]["krippendorff_alpha_ordinal"]["ci_low"] is not None


def test_agreement_report_of_a_campaign_without_judgments_equals_the_previous_implementation():
    campaign = CampaignFactory()
    ItemFactory(campaign=campaign)
    assert agreement_report(campaign=campaign, n_boot=50) == agreement_reference.agreement_report(campaign=campaign, n_boot=50)
