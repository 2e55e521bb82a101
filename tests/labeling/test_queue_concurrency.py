"""Many annotators hammer next + submit in parallel threads, each with its own database connection, on
PostgreSQL (where SKIP LOCKED is what keeps them apart). Afterwards every item has exactly k judgments, no
annotator judged an item twice, nothing was lost, and retried submits wrote nothing twice."""
from __future__ import annotations

import random
import threading
import uuid
from collections import Counter

import pytest
from django.db import connection, connections

from labeling.models import Assignment, ComparisonItem, Judgment
from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput
from tests.factories import CampaignFactory, ItemFactory, member

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

N_ANNOTATORS = 8
N_ITEMS = 40


def _annotate(user, campaign, seed: int, log: list, errors: list) -> None:
    rng = random.Random(seed)
    try:
        while True:
            slot = assignment_next(user=user, campaign=campaign)
            if slot is None:
                return
            data = JudgmentInput(winner=rng.choice(slot.shown_order), client_id=uuid.uuid4())
            first = judgment_record(user=user, assignment_id=slot.pk, data=data)
            log.append(("submit", first.created))
            if rng.random() < 0.3:  # the network dropped the answer: the client retries with the same id
                retry = judgment_record(user=user, assignment_id=slot.pk, data=data)
                log.append(("retry", retry.created, retry.judgment.pk == first.judgment.pk))
    except Exception as exc:  # surfaced in the main thread
        errors.append(exc)
    finally:
        connections.close_all()


@pytest.mark.parametrize("k", [1, 3])
def test_parallel_annotators_fill_every_item_exactly_k_times(k):
    if connection.vendor != "postgresql":
        pytest.skip("row-lock concurrency is tested on PostgreSQL (DATABASE_URL)")
    campaign = CampaignFactory(overlap=k)
    items = [ItemFactory(campaign=campaign) for _ in range(N_ITEMS)]
    users = [member(campaign) for _ in range(N_ANNOTATORS)]
    log: list = []
    errors: list = []
    threads = [
        threading.Thread(target=_annotate, args=(user, campaign, i, log, errors)) for i, user in enumerate(users)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "an annotator thread hung"
    assert not errors, errors

    judgments = list(Judgment.objects.filter(campaign=campaign).values_list("item_id", "annotator_id"))
    per_item = Counter(item for item, _ in judgments)
    assert set(per_item) == {i.pk for i in items}
    assert set(per_item.values()) == {k}, "every item has exactly k judgments"
    assert len(set(judgments)) == len(judgments), "no annotator judged an item twice"
    submits = [e for e in log if e[0] == "submit"]
    retries = [e for e in log if e[0] == "retry"]
    assert len(submits) == N_ITEMS * k and all(created for _, created in submits), "nothing lost"
    assert retries and all(not created and same for _, created, same in retries), "retries wrote nothing"
    assert not Assignment.objects.filter(campaign=campaign).exclude(state=Assignment.State.DONE).exists()
    assert ComparisonItem.objects.filter(campaign=campaign, status=ComparisonItem.Status.COMPLETE).count() == N_ITEMS
    # Work was shared out, not done by one thread that happened to win every lock.
    assert len({a for _, a in judgments}) >= min(N_ANNOTATORS, N_ITEMS * k) // 2
