"""Ratings of competitors (model versions) from pairwise outcomes, as Chatbot Arena reports them.

An outcome is ``(a, b, score)`` with score 1.0 when ``a`` won, 0.0 when ``b`` won and 0.5 for a tie.

- ``bradley_terry``: maximum likelihood strengths with Hunter's (2004) MM algorithm (ties count half a win
  for each side), on the Elo scale: rating = 1000 + 400 * log10(strength), centred so the mean strength's
  log is 0. Under BT, P(a beats b) = 1 / (1 + 10 ** ((r_b - r_a) / 400)).
- ``elo``: the online Elo update in the given order (K = 4 by default, as Arena); order dependent, which is
  why the leaderboard prefers BT and uses Elo only for comparison.
- ``ratings_with_ci``: either one with a percentile bootstrap over outcomes.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

Outcome = tuple[Hashable, Hashable, float]
BASE, SCALE = 1000.0, 400.0


@dataclass(frozen=True)
class Rating:
    name: Hashable
    rating: float
    low: float | None
    high: float | None
    comparisons: int
    wins: float  # ties count half

    def as_dict(self) -> dict:
        def r(x):
            return None if x is None else round(x, 1)

        return {
            "name": self.name,
            "rating": r(self.rating),
            "ci_low": r(self.low),
            "ci_high": r(self.high),
            "comparisons": self.comparisons,
            "wins": self.wins,
        }


def bradley_terry(outcomes: Sequence[Outcome], *, max_iter: int = 1000, tol: float = 1e-9, prior: float = 0.5) -> dict:
    """BT ratings on the Elo scale. ``prior`` adds that many virtual ties of every competitor against a
    virtual average opponent, which keeps a competitor that never lost (or never won) finite."""
    names = sorted({o[0] for o in outcomes} | {o[1] for o in outcomes}, key=repr)
    if not names:
        return {}
    idx = {n: i for i, n in enumerate(names)}
    m = len(names)
    wins = np.zeros((m, m))  # wins[i, j]: how often i beat j
    for a, b, score in outcomes:
        wins[idx[a], idx[b]] += score
        wins[idx[b], idx[a]] += 1 - score
    games = wins + wins.T
    p = np.ones(m)
    for _ in range(max_iter):
        # MM update with a virtual opponent of strength 1 (the prior's pseudo-games).
        w = wins.sum(axis=1) + prior
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1) + 2 * prior / (p + 1)
        new = w / denom
        new /= math.exp(np.log(new).mean())
        if np.abs(np.log(new) - np.log(p)).max() < tol:
            p = new
            break
        p = new
    return {n: BASE + SCALE * math.log10(p[idx[n]]) for n in names}


def elo(outcomes: Sequence[Outcome], *, k: float = 4.0) -> dict:
    """Online Elo from BASE, updating in the order given."""
    ratings: dict = defaultdict(lambda: BASE)
    for a, b, score in outcomes:
        expected = 1 / (1 + 10 ** ((ratings[b] - ratings[a]) / SCALE))
        ratings[a] += k * (score - expected)
        ratings[b] -= k * (score - expected)
    return dict(ratings)


def ratings_with_ci(
    outcomes: Sequence[Outcome],
    *,
    method: Callable[[Sequence[Outcome]], dict] = bradley_terry,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> list[Rating]:
    """Ratings sorted best first, each with a percentile bootstrap interval (outcomes resampled with
    replacement; for Elo each resample is also shuffled, so the interval covers the order dependence)."""
    outcomes = list(outcomes)
    point = method(outcomes)
    if not point:
        return []
    rng = random.Random(seed)
    draws: dict = defaultdict(list)
    for _ in range(n_boot if len(outcomes) > 1 else 0):
        sample = rng.choices(outcomes, k=len(outcomes))
        for name, value in method(sample).items():
            draws[name].append(value)
    comparisons: dict = defaultdict(int)
    wins: dict = defaultdict(float)
    for a, b, score in outcomes:
        comparisons[a] += 1
        comparisons[b] += 1
        wins[a] += score
        wins[b] += 1 - score
    tail = (1 - level) / 2
    result = []
    for name, value in point.items():
        d = draws.get(name, [])
        low, high = (float(np.quantile(d, tail)), float(np.quantile(d, 1 - tail))) if len(d) >= 20 else (None, None)
        result.append(Rating(name, value, low, high, comparisons[name], wins[name]))
    return sorted(result, key=lambda r: -r.rating)
