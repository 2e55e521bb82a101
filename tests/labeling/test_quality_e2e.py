"""THE DONE TEST for quality control: simulated annotators of known reliability judge campaigns through the
queue services, like people; the platform must rank them correctly, flag the random one on gold, and spend
fewer judgments with dynamic overlap than with fixed overlap for the same consensus quality.

Seeded, so it is deterministic; ``QSEED=<n>`` reruns it on other random draws (seeds 5-8 all pass)."""
from __future__ import annotations

import os
import random
import uuid

import pytest

from labeling.models import Judgment, QualityFlag
from labeling.selectors_quality import agreement_report, annotator_report, item_consensus, leaderboard
from labeling.services.items import ItemSpec, PromptSpec, ResponseSpec, items_create
from labeling.services.quality import gold_mark
from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput
from tests.factories import CampaignFactory, UserFactory, member

pytestmark = pytest.mark.django_db

TRUE_RATING = {"policy-v1": 0.0, "policy-v2": 300.0, "policy-v3": 600.0}
N_ITEMS, N_GOLD = 40, 12


class Simulated:
    """An annotator who judges like a person with a known accuracy: ``good`` is right with probability
    ``accuracy`` (else picks the loser or a tie), ``random`` picks A / B / tie uniformly, ``adversarial``
    always picks the worse response."""

    def __init__(self, name: str, style: str, accuracy: float = 0.0, ms: int = 6000, seed: int = 0):
        self.user = UserFactory(username=name)
        self.style, self.accuracy, self.ms = style, accuracy, ms
        self.rng = random.Random(seed)

    def decide(self, slot, truth: dict) -> JudgmentInput:
        winner, loser = truth[slot.item_id]
        if self.style == "random":
            choice = self.rng.choice([winner, loser, None])
        elif self.style == "adversarial":
            choice = loser
        else:
            choice = winner if self.rng.random() < self.accuracy else self.rng.choice([loser, None])
        ms = self.ms + self.rng.randint(0, 2000)
        if choice is None:
            return JudgmentInput(tie=True, client_id=uuid.uuid4(), time_spent_ms=ms)
        return JudgmentInput(winner=choice, strength=self.rng.choice([1, 2, 3]), client_id=uuid.uuid4(), time_spent_ms=ms)


def _campaign(name: str, rng: random.Random, **settings):
    """A pairwise campaign of N_ITEMS ordinary and N_GOLD gold items comparing policy versions; returns it with
    the ground truth {item id: (better response id, worse response id)}."""
    campaign = CampaignFactory(name=name, allow_both_bad=False, gold_rate=0.3, gold_min_accuracy=0.6,
                               gold_min_judged=6, gold_action="flag", **settings)
    names = list(TRUE_RATING)
    specs = []
    for i in range(N_ITEMS + N_GOLD):
        a, b = rng.sample(names, 2)
        specs.append(ItemSpec(prompt=PromptSpec(text=f"{name} prompt {i}"),
                              responses=[ResponseSpec(text=f"{name} {i} by {a}", model_name=a),
                                         ResponseSpec(text=f"{name} {i} by {b}", model_name=b)]))
    items_create(campaign=campaign, round=campaign.rounds.first(), specs=specs)
    truth, gold_ids = {}, []
    for n, item in enumerate(campaign.items.order_by("id").prefetch_related("item_responses__response")):
        (ra, rb) = [link.response for link in item.item_responses.all()]
        p_a = 1 / (1 + 10 ** ((TRUE_RATING[rb.model_name] - TRUE_RATING[ra.model_name]) / 400))
        truth[item.pk] = (ra.pk, rb.pk) if rng.random() < p_a else (rb.pk, ra.pk)
        if n >= N_ITEMS:
            gold_mark(campaign=campaign, item=item, answer=JudgmentInput(winner=truth[item.pk][0]))
            gold_ids.append(item.pk)
    return campaign, truth, set(gold_ids)


def _run(campaign, crowd: list[Simulated], truth: dict) -> None:
    """Round-robin: each annotator asks for their next item and judges it, until nobody gets one."""
    for person in crowd:
        member(campaign, user=person.user)
    while True:
        progressed = False
        for person in crowd:
            slot = assignment_next(user=person.user, campaign=campaign)
            if slot is not None:
                judgment_record(user=person.user, assignment_id=slot.pk, data=person.decide(slot, truth))
                progressed = True
        if not progressed:
            return


def _consensus_accuracy(campaign, truth: dict, gold: set) -> float:
    consensus = item_consensus(campaign=campaign, method="dawid_skene")
    right = 0
    for item_id, (winner, _loser) in truth.items():
        if item_id in gold:
            continue
        positions = dict(campaign.items.get(pk=item_id).item_responses.values_list("response_id", "position"))
        right += consensus[item_id].label == "AB"[positions[winner]]
    return right / (len(truth) - len(gold))


def test_simulated_annotators_are_ranked_flagged_and_dynamic_overlap_saves_budget():
    seed = int(os.environ.get("QSEED", 5))
    random.seed(seed)  # gold mixing draws from the module RNG
    rng = random.Random(seed + 6)
    crowd = [
        Simulated("sim-good", "good", accuracy=0.92, seed=1),
        Simulated("sim-decent-1", "good", accuracy=0.8, seed=2),
        Simulated("sim-decent-2", "good", accuracy=0.75, seed=3),
        Simulated("sim-random", "random", ms=700, seed=4),
        Simulated("sim-adversarial", "adversarial", seed=5),
    ]
    fixed, truth_f, gold_f = _campaign("fixed overlap", rng, overlap=5)
    dynamic, truth_d, gold_d = _campaign("dynamic overlap", rng, overlap=2, overlap_mode="dynamic", overlap_max=5,
                                         consensus_threshold=0.95)
    _run(fixed, crowd, truth_f)
    _run(dynamic, crowd, truth_d)

    # 1. Reliability (Dawid-Skene over the stored judgments) ranks good > random > adversarial in both.
    for campaign in (fixed, dynamic):
        by_name = {row["username"]: row for row in annotator_report(campaign=campaign)}
        rel = {name: by_name[name]["reliability"] for name in by_name}
        assert rel["sim-good"] > rel["sim-random"] > rel["sim-adversarial"], rel
        assert rel["sim-good"] > 0.7 and rel["sim-adversarial"] < 0.15

    # 2. Gold accuracy flags the random annotator (and the adversary), never the good one.
    flagged = set(
        QualityFlag.objects.filter(campaign=fixed, kind=QualityFlag.Kind.GOLD_ACCURACY).values_list(
            "annotator__username", flat=True
        )
    )
    assert "sim-random" in flagged and "sim-adversarial" in flagged and "sim-good" not in flagged
    # The random one also works too fast: low-effort flags on its judgments, which all stay.
    assert QualityFlag.objects.filter(campaign=fixed, kind=QualityFlag.Kind.TOO_FAST,
                                      annotator__username="sim-random").exists()

    # 3. Dynamic overlap: fewer judgments for the same consensus quality.
    spent_fixed = Judgment.objects.filter(campaign=fixed).exclude(item_id__in=gold_f).count()
    spent_dynamic = Judgment.objects.filter(campaign=dynamic).exclude(item_id__in=gold_d).count()
    acc_fixed = _consensus_accuracy(fixed, truth_f, gold_f)
    acc_dynamic = _consensus_accuracy(dynamic, truth_d, gold_d)
    print(f"\nfixed overlap 5: {spent_fixed} judgments, consensus accuracy {acc_fixed:.3f}")
    print(f"dynamic overlap 2..5: {spent_dynamic} judgments, consensus accuracy {acc_dynamic:.3f}")
    assert spent_fixed == N_ITEMS * 5
    assert spent_dynamic < spent_fixed
    assert acc_dynamic >= acc_fixed - 0.05 and acc_dynamic >= 0.9

    # 4. The leaderboard recovers the policy versions' order from the fixed campaign's judgments.
    for basis in ("judgments", "consensus"):
        board = leaderboard(campaign=fixed, basis=basis, n_boot=100)
        assert [m["name"] for m in board["models"]] == ["policy-v3", "policy-v2", "policy-v1"], board
        assert all(m["ci_low"] <= m["rating"] <= m["ci_high"] for m in board["models"])

    # 5. Agreement is measured, with intervals.
    report = agreement_report(campaign=fixed, n_boot=50)
    alpha = report["outcome"]["krippendorff_alpha_nominal"]
    assert alpha["ci_low"] <= alpha["value"] <= alpha["ci_high"] and len(report["pairs"]) == 10
