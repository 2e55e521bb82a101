"""Consensus estimators and model ratings on data with a known answer."""
from __future__ import annotations

import math
import random

import pytest

from labeling.quality.aggregation import dawid_skene, majority_vote, vote_posterior
from labeling.quality.rating import bradley_terry, elo, ratings_with_ci


def test_majority_vote_takes_the_most_frequent_label_and_refuses_a_tied_vote():
    result = majority_vote([(1, "a", "A"), (1, "b", "A"), (1, "c", "B"), (2, "a", "A"), (2, "b", "B")])
    assert result[1].label == "A" and result[1].confidence == pytest.approx(2 / 3) and result[1].votes == 3
    assert result[2].label is None and result[2].confidence == 0.5


def test_vote_posterior_by_hand():
    # Two annotators of accuracy 0.8 agree on A among K = 3 labels: 0.8^2 : 0.1^2 : 0.1^2.
    c = vote_posterior([("A", 0.8), ("A", 0.8)], ["A", "B", "tie"])
    assert c.label == "A" and c.confidence == pytest.approx(0.64 / 0.66)
    split = vote_posterior([("A", 0.8), ("B", 0.8)], ["A", "B", "tie"])
    assert split.confidence == pytest.approx(0.08 / (0.08 + 0.08 + 0.01))
    # An adversary (accuracy 0.05) voting B is evidence for A.
    assert vote_posterior([("B", 0.05)], ["A", "B"]).label == "A"


def _simulate(n_items=300, seed=7):
    rng = random.Random(seed)
    labels = ["A", "B", "tie"]
    truth = {i: rng.choice(["A", "B"]) for i in range(n_items)}
    accuracy = {"good1": 0.9, "good2": 0.8, "good3": 0.75}
    triples = []
    for item, true in truth.items():
        for name, acc in accuracy.items():
            triples.append((item, name, true if rng.random() < acc else rng.choice([x for x in labels if x != true])))
        triples.append((item, "random", rng.choice(labels)))
        triples.append((item, "adversary", "B" if true == "A" else "A"))
    return truth, triples


def test_dawid_skene_ranks_annotators_by_true_reliability_and_beats_majority_vote():
    truth, triples = _simulate()
    ds = dawid_skene(triples, labels=["A", "B", "tie"])
    r = ds.reliability
    assert r["good1"] > r["good2"] > r["good3"] > r["random"] > r["adversary"]
    assert r["good1"] == pytest.approx(0.9, abs=0.05) and r["adversary"] < 0.05
    # The adversary's confusion matrix is learned as a swap: when the truth is A it says B.
    assert ds.confusion["adversary"][0, 1] > 0.9
    ds_acc = sum(ds.items[i].label == t for i, t in truth.items()) / len(truth)
    mv = majority_vote(triples)
    mv_acc = sum(mv[i].label == t for i, t in truth.items()) / len(truth)
    assert ds_acc > mv_acc and ds_acc > 0.95
    assert ds.converged and abs(sum(ds.class_prior.values()) - 1) < 1e-9


def test_dawid_skene_is_certain_when_everyone_agrees():
    triples = [(i, a, "A" if i % 2 else "B") for i in range(20) for a in ("x", "y", "z")]
    ds = dawid_skene(triples)
    assert all(c.confidence > 0.99 for c in ds.items.values())
    assert ds.items[1].label == "A" and ds.items[2].label == "B"


def test_bradley_terry_two_competitors_by_hand():
    # 3 wins to 1: the MLE strength ratio is 3, i.e. 400 * log10(3) = 190.8 rating points apart.
    outcomes = [("m1", "m2", 1.0)] * 3 + [("m1", "m2", 0.0)]
    ratings = bradley_terry(outcomes, prior=0.0)
    assert ratings["m1"] - ratings["m2"] == pytest.approx(400 * math.log10(3), abs=1e-3)
    assert (ratings["m1"] + ratings["m2"]) / 2 == pytest.approx(1000)


def test_bradley_terry_ties_count_half_and_recover_true_order():
    assert bradley_terry([("a", "b", 0.5)] * 4, prior=0.0)["a"] == pytest.approx(1000)
    rng = random.Random(3)
    true = {"v1": 0.0, "v2": 100.0, "v3": 250.0}
    outcomes = []
    for _ in range(600):
        a, b = rng.sample(list(true), 2)
        p = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
        outcomes.append((a, b, 1.0 if rng.random() < p else 0.0))
    board = ratings_with_ci(outcomes, n_boot=100)
    assert [r.name for r in board] == ["v3", "v2", "v1"]
    for r in board:
        assert r.low < r.rating < r.high
    gap = board[0].rating - board[2].rating
    assert gap == pytest.approx(250, abs=60)


def test_elo_single_game_by_hand_and_bootstrap_intervals():
    assert elo([("a", "b", 1.0)]) == {"a": pytest.approx(1002.0), "b": pytest.approx(998.0)}
    board = ratings_with_ci([("a", "b", 1.0)] * 30 + [("a", "b", 0.0)] * 10, method=elo, n_boot=50)
    assert board[0].name == "a" and board[0].low is not None and board[0].comparisons == 40
