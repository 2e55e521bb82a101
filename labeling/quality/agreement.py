"""Inter-annotator agreement.

Input shape for the multi-coder statistics: ``units`` maps a unit (an item) to ``{coder: value}``; a coder
who did not judge a unit is simply absent (missing data). Units with fewer than two values carry no
information about agreement and are left out (Krippendorff 2011, "pairable values").

References, each reproduced in ``tests/labeling/quality``:
- Cohen (1960); the 2x2 example on Wikipedia's "Cohen's kappa" page (po 0.70, pe 0.50, kappa 0.40).
- Fleiss (1971); the 10 subjects x 14 raters example on Wikipedia's "Fleiss' kappa" page (kappa 0.210).
- Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011): the 4 observers x 12 units example
  (nominal 0.743, ordinal 0.815, interval 0.849, ratio 0.797) and the two-observer examples (0.095, 0.692).
"""
from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

Units = Mapping[Hashable, Mapping[Hashable, Hashable]]


@dataclass(frozen=True)
class Estimate:
    """A statistic with its (percentile bootstrap) confidence interval and the data it rests on."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n_units: int = 0

    def as_dict(self) -> dict:
        def r(x):
            return None if x is None or math.isnan(x) else round(x, 4)

        return {"value": r(self.value), "ci_low": r(self.low), "ci_high": r(self.high), "n_units": self.n_units}


def _pairable(units: Units) -> dict:
    # No copy of each unit's mapping: at a million judgments the copies were a second full set of dicts.
    return {u: v for u, v in units.items() if len(v) >= 2}


def percent_agreement(units: Units) -> float | None:
    """Share of agreeing coder pairs, over all pairs of coders within each unit (each unit's pairs weighted
    equally, as Fleiss' observed agreement P-bar does for a constant number of raters). None without data."""
    shares = []
    for values in _pairable(units).values():
        vals = list(values.values())
        pairs = list(combinations(vals, 2))
        shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return sum(shares) / len(shares) if shares else None


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa for two coders, ``pairs`` being (coder 1's value, coder 2's value) per unit.
    kappa = (po - pe) / (1 - pe). Returns 1.0 when both coders always give one and the same value (pe = 1,
    perfect agreement) and None for no data."""
    n = len(pairs)
    if n == 0:
        return None
    po = sum(a == b for a, b in pairs) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    pe = sum(first[c] * second[c] for c in set(first) | set(second)) / (n * n)
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0
    return (po - pe) / (1 - pe)


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa from a subjects x categories table of how many raters chose each category.

    Rows may have different numbers of raters (at least 2): each subject's agreement P_i uses its own n_i and
    category shares p_j pool all ratings; with a constant n this is exactly Fleiss (1971)."""
    table = np.asarray([row for row in counts if sum(row) >= 2], dtype=float)
    if table.size == 0:
        return None
    n_i = table.sum(axis=1)
    p_i = ((table * table).sum(axis=1) - n_i) / (n_i * (n_i - 1))
    p_bar = p_i.mean()
    p_j = table.sum(axis=0) / table.sum()
    pe = float((p_j * p_j).sum())
    if pe >= 1.0:
        return 1.0 if p_bar >= 1.0 else 0.0
    return float((p_bar - pe) / (1 - pe))


def fleiss_kappa_from_units(units: Units) -> float | None:
    """Fleiss' kappa over ``units`` ({unit: {coder: label}}), building the count table."""
    pairable = _pairable(units)
    categories = sorted({v for values in pairable.values() for v in values.values()}, key=repr)
    index = {c: i for i, c in enumerate(categories)}
    rows = []
    for values in pairable.values():
        row = [0] * len(categories)
        for v in values.values():
            row[index[v]] += 1
        rows.append(row)
    return fleiss_kappa(rows)


def _coincidences(units: Units) -> tuple[list, np.ndarray]:
    """Krippendorff's coincidence matrix o_ck: each unit with m values contributes every ordered pair of its
    values with weight 1 / (m - 1)."""
    values = sorted({v for vs in units.values() for v in vs.values()}, key=lambda v: (isinstance(v, str), v))
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for vs in units.values():
        vals = [index[v] for v in vs.values()]
        m = len(vals)
        if m < 2:
            continue
        counts = Counter(vals)
        for c, nc in counts.items():
            for k, nk in counts.items():
                o[c, k] += (nc * (nk - (1 if c == k else 0))) / (m - 1)
    return values, o


def _delta2(metric: str, values: list, n_c: np.ndarray) -> np.ndarray:
    size = len(values)
    d = np.zeros((size, size))
    for c in range(size):
        for k in range(size):
            if c == k:
                continue
            if metric == "nominal":
                d[c, k] = 1.0
            elif metric == "ordinal":
                lo, hi = min(c, k), max(c, k)
                d[c, k] = (n_c[lo : hi + 1].sum() - (n_c[c] + n_c[k]) / 2) ** 2
            elif metric == "interval":
                d[c, k] = (float(values[c]) - float(values[k])) ** 2
            elif metric == "ratio":
                a, b = float(values[c]), float(values[k])
                d[c, k] = ((a - b) / (a + b)) ** 2 if a + b else 0.0
            else:
                raise ValueError(f"unknown metric {metric!r}: use nominal, ordinal, interval or ratio")
    return d


def krippendorff_alpha(units: Units, metric: str = "nominal") -> float | None:
    """Krippendorff's alpha = 1 - D_o / D_e over the coincidence matrix (Krippendorff 2011).

    ``metric``: "nominal" (labels: A / B / tie / both-bad), "ordinal" (ordered values, e.g. a signed
    strength -3..3; the distance counts how many values lie between two values, so only their order matters),
    "interval" or "ratio" (numbers). Missing values are fine. None when fewer than two pairable values or
    when every value is the same (no variation: alpha is undefined)."""
    values, o = _coincidences(units)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n < 2:
        return None
    d2 = _delta2(metric, values, n_c)
    observed = (o * d2).sum()
    expected = (np.outer(n_c, n_c) * d2).sum() / (n - 1)
    if expected == 0:
        return None
    return float(1 - observed / expected)


def bootstrap_ci(
    statistic: Callable[[dict], float | None],
    units: Units,
    *,
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """The statistic on ``units`` with a percentile bootstrap interval from resampling units with
    replacement (units, not single judgments, are the independent draws). Resamples where the statistic is
    undefined are dropped; with fewer than 20 left there is no interval."""
    units = dict(units)
    value = statistic(units)
    keys = list(units)
    if value is None or len(keys) < 2:
        return Estimate(value=value, n_units=len(keys))
    rng = random.Random(seed)
    draws = []
    for _ in range(n_boot):
        sample = {(i, k): units[k] for i, k in enumerate(rng.choices(keys, k=len(keys)))}
        stat = statistic(sample)
        if stat is not None and not math.isnan(stat):
            draws.append(stat)
    if len(draws) < 20:
        return Estimate(value=value, n_units=len(keys))
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Estimate(value=value, low=float(low), high=float(high), n_units=len(keys))


def pairwise_tables(units: Units) -> dict[tuple, list[tuple]]:
    """For every pair of coders (sorted), the (value of first, value of second) pairs on units both coded."""
    tables: dict[tuple, list[tuple]] = defaultdict(list)
    for values in units.values():
        for a, b in combinations(sorted(values, key=repr), 2):
            tables[(a, b)].append((values[a], values[b]))
    return dict(tables)


def wilson_interval(successes: int, n: int, *, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (good at small n and near 0 or 1, unlike the normal
    approximation). ``z`` 1.96: two-sided 95%; 1.2816: each bound one-sided 90%."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# --- Vectorised bootstrap ------------------------------------------------------------------------------------
# Resampling units with replacement is the same as giving each unit a multinomial weight; every statistic
# here is a function of weighted sums of per-unit contributions, so one matrix product per statistic
# replaces n_boot Python passes. Units are held as a count table (unit x value, small ints) and grouped by
# identical rows ("patterns": a few hundred at most), so a resample is reduced to per-pattern weight sums
# as it is drawn: memory stays O(units + n_boot x patterns), never O(n_boot x units).


def _weights(n_units: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=n_boot).astype(float)


def _grouped_weights(inverse: np.ndarray, n_groups: int, n_boot: int, seed: int) -> np.ndarray:
    """``_weights(len(inverse), n_boot, seed)`` summed per group (``inverse``: each unit's group), drawn in
    blocks of rows: ``Generator.multinomial`` draws its rows one after the other, so the blocks give the very
    same draws as one call (tests/labeling/quality checks this)."""
    n = len(inverse)
    rng = np.random.default_rng(seed)
    p = np.full(n, 1 / n)
    out = np.empty((n_boot, n_groups))
    block = max(1, min(n_boot, 2_000_000 // n))
    for start in range(0, n_boot, block):
        draws = rng.multinomial(n, p, size=min(block, n_boot - start))
        for i, row in enumerate(draws):
            out[start + i] = np.bincount(inverse, weights=row, minlength=n_groups)
    return out


def _patterns(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct rows, each row's pattern index, multiplicity of each pattern)."""
    table = np.asarray(table)
    base = int(table.max()) + 1 if table.size else 1
    if table.ndim == 2 and table.shape[1] * math.log2(base) < 62:
        # One integer per row (mixed radix): a 1-d unique is ~20x faster than unique(axis=0) on a million rows.
        keys = table.astype(np.int64) @ (base ** np.arange(table.shape[1], dtype=np.int64))
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        uniq = table[first]
    else:
        uniq, inverse = np.unique(table, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return uniq, inverse, np.bincount(inverse, minlength=len(uniq)).astype(float)


def count_table(units: Units, values: list) -> np.ndarray:
    """units x ``values``: how many coders gave each value in each unit (unit order kept)."""
    index = {v: i for i, v in enumerate(values)}
    table = np.zeros((len(units), len(values)), dtype=np.int32)
    for u, vs in enumerate(units.values()):
        for v in vs.values():
            table[u, index[v]] += 1
    return table


def _interval(draws: np.ndarray, level: float) -> tuple[float | None, float | None]:
    draws = draws[np.isfinite(draws)]
    if len(draws) < 20:
        return None, None
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def _alpha_from_o(o: np.ndarray, values: list, metric: str) -> float:
    n_c = o.sum(axis=-1)
    n = n_c.sum()
    if n < 2:
        return float("nan")
    d2 = _delta2(metric, values, n_c)
    expected = (np.outer(n_c, n_c) * d2).sum() / (n - 1)
    return float("nan") if expected == 0 else float(1 - (o * d2).sum() / expected)


def _coincidence_rows(uniq: np.ndarray) -> np.ndarray:
    """Each count row's contribution to the coincidence matrix, flattened: n_c * (n_k - [c == k]) / (m - 1)."""
    m = uniq.sum(axis=1).astype(float)
    pairs = uniq[:, :, None].astype(float) * uniq[:, None, :] - np.einsum("uc,ck->uck", uniq, np.eye(uniq.shape[1]))
    return (pairs / (m - 1)[:, None, None]).reshape(len(uniq), -1)


def _unit_order_sum(rows: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Sum of ``rows[inverse[u]]`` over units u added one unit after the other, as the per-unit loop and
    ``per_unit.sum(axis=0)`` add them, so the totals are the same floats (not just equal up to rounding);
    accumulated in blocks so the per-unit rows never all exist at once."""
    total = np.zeros((1, rows.shape[1]))
    for start in range(0, len(inverse), 65_536):
        total = np.cumsum(np.vstack([total, rows[inverse[start:start + 65_536]]]), axis=0)[-1:]
    return total[0]


def krippendorff_alpha_counts(table: np.ndarray, values: list, metric: str = "nominal") -> float | None:
    """``krippendorff_alpha`` from a count table (units x ``values``, sorted as ``_coincidences`` sorts)."""
    table = table[table.sum(axis=1) >= 2]
    if not len(table):
        return krippendorff_alpha({}, metric)
    uniq, inverse, _ = _patterns(table)
    o = _unit_order_sum(_coincidence_rows(uniq), inverse).reshape(len(values), len(values))
    value = _alpha_from_o(o, values, metric)
    return None if math.isnan(value) else value


def krippendorff_alpha_ci(
    units: Units, metric: str = "nominal", *, n_boot: int = 500, level: float = 0.95, seed: int = 0
) -> Estimate:
    """Krippendorff's alpha with a percentile bootstrap over (pairable) units, vectorised."""
    pairable = _pairable(units)
    values, _ = _coincidences(pairable)
    return krippendorff_alpha_ci_counts(count_table(pairable, values), values, metric, n_boot=n_boot, level=level, seed=seed)


def krippendorff_alpha_ci_counts(
    table: np.ndarray, values: list, metric: str = "nominal", *, n_boot: int = 500, level: float = 0.95, seed: int = 0
) -> Estimate:
    """``krippendorff_alpha_ci`` from the pairable units' count table (units x ``values``, in unit order)."""
    n = len(table)
    if n == 0:
        return Estimate(value=None, n_units=0)
    uniq, inverse, _ = _patterns(table)
    rows = _coincidence_rows(uniq)
    size = len(values)
    value = _alpha_from_o(_unit_order_sum(rows, inverse).reshape(size, size), values, metric)
    if math.isnan(value):
        return Estimate(value=None, n_units=n)
    if n_boot <= 0 or n < 2:
        return Estimate(value=value, n_units=n)
    sums = _grouped_weights(inverse, len(uniq), n_boot, seed) @ rows
    draws = np.array([_alpha_from_o(s.reshape(size, size), values, metric) for s in sums])
    low, high = _interval(draws, level)
    return Estimate(value=value, low=low, high=high, n_units=n)


def nominal_agreement_ci(units: Units, *, n_boot: int = 500, level: float = 0.95, seed: int = 0) -> dict[str, Estimate]:
    """Percent agreement and Fleiss' kappa over the same resamples (vectorised)."""
    pairable = _pairable(units)
    categories = sorted({v for vs in pairable.values() for v in vs.values()}, key=repr)
    return nominal_agreement_ci_counts(count_table(pairable, categories), n_boot=n_boot, level=level, seed=seed)


def nominal_agreement_ci_counts(
    table: np.ndarray, *, n_boot: int = 500, level: float = 0.95, seed: int = 0
) -> dict[str, Estimate]:
    """``nominal_agreement_ci`` from the pairable units' count table (units x categories, in unit order)."""
    n = len(table)
    if n == 0:
        return {"percent_agreement": Estimate(None), "fleiss_kappa": Estimate(None)}
    counts, inverse, mult = _patterns(table)
    counts = counts.astype(float)
    n_i = counts.sum(axis=1)
    p_i = ((counts * counts).sum(axis=1) - n_i) / (n_i * (n_i - 1))

    def stats(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p_bar = w @ p_i / w.sum(axis=-1)
        p_j = (w @ counts) / (w @ n_i)[..., None]
        pe = (p_j * p_j).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = np.where(pe >= 1, np.where(p_bar >= 1, 1.0, 0.0), (p_bar - pe) / (1 - pe))
        return p_bar, kappa

    p_bar, kappa = stats(mult[None, :])
    result = {"percent_agreement": float(p_bar[0]), "fleiss_kappa": float(kappa[0])}
    if n_boot <= 0 or n < 2:
        return {k: Estimate(v, n_units=n) for k, v in result.items()}
    boot_p, boot_k = stats(_grouped_weights(inverse, len(counts), n_boot, seed))
    out = {}
    for name, draws in (("percent_agreement", boot_p), ("fleiss_kappa", boot_k)):
        low, high = _interval(draws, level)
        out[name] = Estimate(result[name], low, high, n)
    return out


def cohen_kappa_ci(
    pairs: Sequence[tuple[Hashable, Hashable]], *, n_boot: int = 500, level: float = 0.95, seed: int = 0
) -> Estimate:
    """Cohen's kappa with a vectorised percentile bootstrap over the paired units."""
    categories = sorted({v for pair in pairs for v in pair}, key=repr)
    index = {c: i for i, c in enumerate(categories)}
    first = np.array([index[a] for a, _ in pairs], dtype=np.int64)
    second = np.array([index[b] for _, b in pairs], dtype=np.int64)
    return cohen_kappa_ci_codes(first, second, len(categories), n_boot=n_boot, level=level, seed=seed)


def cohen_kappa_ci_codes(
    first: np.ndarray, second: np.ndarray, n_categories: int, *, n_boot: int = 500, level: float = 0.95, seed: int = 0
) -> Estimate:
    """``cohen_kappa_ci`` from the two coders' category codes per unit (unit order kept); codes must number
    the categories in ``repr`` order as ``cohen_kappa_ci`` does. Counts are integers, so exact."""
    n = len(first)
    if n == 0:
        return Estimate(None, n_units=0)
    first_counts = np.bincount(first, minlength=n_categories).tolist()
    second_counts = np.bincount(second, minlength=n_categories).tolist()
    po = int((first == second).sum()) / n
    pe = sum(a * b for a, b in zip(first_counts, second_counts, strict=True)) / (n * n)
    value = (1.0 if po >= 1.0 else 0.0) if pe >= 1.0 else (po - pe) / (1 - pe)
    if n_boot <= 0 or n < 2:
        return Estimate(value, n_units=n)
    pattern = first * n_categories + second
    uniq, inverse = np.unique(pattern, return_inverse=True)
    eye = np.eye(n_categories)
    one_first, one_second = eye[uniq // n_categories], eye[uniq % n_categories]
    agree = (uniq // n_categories == uniq % n_categories).astype(float)
    w = _grouped_weights(inverse.reshape(-1), len(uniq), n_boot, seed)
    po_b = w @ agree / n
    pe_b = ((w @ one_first) * (w @ one_second)).sum(axis=1) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = np.where(pe_b >= 1, np.where(po_b >= 1, 1.0, 0.0), (po_b - pe_b) / (1 - pe_b))
    low, high = _interval(draws, level)
    return Estimate(value, low, high, n)
