"""Per-item consensus from several annotators' labels.

Three estimators, from cheapest to most informed:
- ``majority_vote``: the most frequent label; confidence is its share of the votes.
- ``vote_posterior``: the posterior probability of each label under a "one accuracy per annotator" model
  (each annotator is right with probability p_a, else picks one of the other K-1 labels uniformly), with a
  uniform prior. It needs only the item's own votes and known accuracies, so the queue can afford it when an
  item fills up (dynamic overlap).
- ``dawid_skene``: Dawid & Skene (1979) EM over the whole campaign: a full confusion matrix per annotator and
  a class prior, jointly with the posterior of every item. It learns that an adversarial annotator's "A"
  means "B", and that a random annotator's votes carry no information.

Every result maps item -> ``Consensus(label, confidence, votes)``; exporters and training use ``confidence``
as a sample weight or margin.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

Triple = tuple[Hashable, Hashable, Hashable]  # (item, annotator, label)


@dataclass(frozen=True)
class Consensus:
    label: Hashable | None  # None: no majority (a tied vote) or no votes
    confidence: float  # P(label is right) under the estimator; for majority vote the label's share of votes
    votes: int
    posterior: dict = field(default_factory=dict)


def majority_vote(triples: Iterable[Triple]) -> dict[Hashable, Consensus]:
    """Most frequent label per item. A tie between the top labels gives ``label=None`` (no consensus) with
    the tied share as confidence, so nobody mistakes a coin flip for a decision."""
    by_item: dict[Hashable, Counter] = defaultdict(Counter)
    for item, _annotator, label in triples:
        by_item[item][label] += 1
    result = {}
    for item, counts in by_item.items():
        total = sum(counts.values())
        ranked = counts.most_common()
        top_label, top = ranked[0]
        tied = len(ranked) > 1 and ranked[1][1] == top
        result[item] = Consensus(
            label=None if tied else top_label,
            confidence=top / total,
            votes=total,
            posterior={k: v / total for k, v in counts.items()},
        )
    return result


def vote_posterior(
    votes: Sequence[tuple[Hashable, float]], labels: Sequence[Hashable], *, prior: Mapping | None = None
) -> Consensus:
    """Posterior over ``labels`` from (label, annotator accuracy) votes. An accuracy below 1/K counts as
    evidence against the label voted for; accuracies are clipped to [0.01, 0.99] so one vote never decides
    alone with certainty."""
    k = len(labels)
    if k < 2:
        raise ValueError("need at least two possible labels")
    log_post = {lab: math.log(prior[lab]) if prior else 0.0 for lab in labels}
    for voted, accuracy in votes:
        p = min(max(accuracy, 0.01), 0.99)
        wrong = (1 - p) / (k - 1)
        for lab in labels:
            log_post[lab] += math.log(p if lab == voted else wrong)
    top = max(log_post.values())
    weights = {lab: math.exp(v - top) for lab, v in log_post.items()}
    total = sum(weights.values())
    posterior = {lab: w / total for lab, w in weights.items()}
    best = max(posterior, key=posterior.get)
    return Consensus(label=best if votes else None, confidence=posterior[best], votes=len(votes), posterior=posterior)


@dataclass
class DawidSkeneResult:
    labels: list  # the label order of the matrices
    items: dict[Hashable, Consensus]
    class_prior: dict[Hashable, float]
    confusion: dict[Hashable, np.ndarray]  # annotator -> K x K, row = true label, column = given label
    reliability: dict[Hashable, float]  # annotator -> P(given label == true label), prior-weighted
    iterations: int = 0
    converged: bool = False

    def annotator_summary(self) -> dict[Hashable, dict]:
        return {
            a: {
                "reliability": round(self.reliability[a], 4),
                "confusion": {
                    str(t): {str(g): round(float(self.confusion[a][i, j]), 4) for j, g in enumerate(self.labels)}
                    for i, t in enumerate(self.labels)
                },
            }
            for a in self.confusion
        }


def dawid_skene(
    triples: Iterable[Triple],
    *,
    labels: Sequence[Hashable] | None = None,
    max_iter: int = 500,
    tol: float = 1e-5,
    smoothing: float = 0.01,
    diagonal_prior: float = 2.0,
) -> DawidSkeneResult:
    """Dawid-Skene EM. Starts from the (soft) majority vote, so label permutations are anchored to what most
    annotators say; ``smoothing`` is a small Dirichlet pseudo-count that keeps unseen confusions off zero.
    ``diagonal_prior`` adds that many pseudo-counts of "right" to every confusion row (a MAP estimate): plain
    maximum likelihood is flat between one true class and two copies of it, and EM then drifts into using a
    rarely true class (a tie) as a duplicate of a frequent one; a few pseudo-counts of competence make the
    unsplit solution the better one, and real data (an adversary's consistent swap) still outweighs them.
    An annotator's reliability is sum_k prior_k * confusion[k, k]: their expected accuracy on this data."""
    triples = list(triples)
    labels = list(labels) if labels is not None else sorted({t[2] for t in triples}, key=repr)
    items = sorted({t[0] for t in triples}, key=repr)
    annotators = sorted({t[1] for t in triples}, key=repr)
    li = {lab: i for i, lab in enumerate(labels)}
    ii = {it: i for i, it in enumerate(items)}
    ai = {a: i for i, a in enumerate(annotators)}
    k, n_items, n_ann = len(labels), len(items), len(annotators)
    obs = np.array([(ii[i], ai[a], li[lab]) for i, a, lab in triples], dtype=int).reshape(-1, 3)
    # T: item x label posterior, initialised by vote shares.
    T = np.full((n_items, k), smoothing)
    np.add.at(T, (obs[:, 0], obs[:, 2]), 1.0)
    T /= T.sum(axis=1, keepdims=True)
    converged, iterations = False, 0
    for iteration in range(1, max_iter + 1):
        iterations = iteration
        prior = T.mean(axis=0)
        conf = np.full((n_ann, k, k), smoothing) + diagonal_prior * np.eye(k)
        for t in range(k):
            np.add.at(conf[:, t, :], (obs[:, 1], obs[:, 2]), T[obs[:, 0], t])
        conf /= conf.sum(axis=2, keepdims=True)
        log_t = np.tile(np.log(prior), (n_items, 1))
        np.add.at(log_t, obs[:, 0], np.log(conf[obs[:, 1], :, obs[:, 2]]))
        log_t -= log_t.max(axis=1, keepdims=True)
        new_t = np.exp(log_t)
        new_t /= new_t.sum(axis=1, keepdims=True)
        delta = np.abs(new_t - T).max() if n_items else 0.0
        T = new_t
        if delta < tol:
            converged = True
            break
    prior = T.mean(axis=0) if n_items else np.full(k, 1 / max(k, 1))
    votes = Counter(obs[:, 0].tolist())
    consensus = {
        it: Consensus(
            label=labels[int(T[i].argmax())],
            confidence=float(T[i].max()),
            votes=votes[i],
            posterior={labels[j]: float(T[i, j]) for j in range(k)},
        )
        for it, i in ii.items()
    }
    confusion = {a: conf[ai[a]] for a in annotators} if n_items else {}
    reliability = {a: float((prior * np.diag(conf[ai[a]])).sum()) for a in annotators} if n_items else {}
    return DawidSkeneResult(
        labels=labels,
        items=consensus,
        class_prior={labels[j]: float(prior[j]) for j in range(k)},
        confusion=confusion,
        reliability=reliability,
        iterations=iterations,
        converged=converged,
    )
