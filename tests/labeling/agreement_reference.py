"""The previous ``agreement_report`` (dict rows, dict units, an n_boot x units weight matrix), kept verbatim as
the reference the compact implementation must equal: same numbers, same keys, same bootstrap draws."""
from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from labeling.models import Judgment
from labeling.quality.agreement import (
    Estimate,
    _coincidences,
    _delta2,
    cohen_kappa,
    krippendorff_alpha,
    pairwise_tables,
    percent_agreement,
)
from labeling.selectors_quality import _names
from labeling.services import quality_labels as ql
from labeling.services.quality import SCORED_SOURCES


def _pairable(units):
    return {u: dict(v) for u, v in units.items() if len(v) >= 2}


def _weights(n_units, n_boot, seed):
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=n_boot).astype(float)


def _interval(draws, level):
    draws = draws[np.isfinite(draws)]
    if len(draws) < 20:
        return None, None
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def _alpha_from_o(o, values, metric):
    n_c = o.sum(axis=-1)
    n = n_c.sum()
    if n < 2:
        return float("nan")
    d2 = _delta2(metric, values, n_c)
    expected = (np.outer(n_c, n_c) * d2).sum() / (n - 1)
    return float("nan") if expected == 0 else float(1 - (o * d2).sum() / expected)


def krippendorff_alpha_ci(units, metric="nominal", *, n_boot=500, level=0.95, seed=0):
    pairable = _pairable(units)
    values, _ = _coincidences(pairable)
    index = {v: i for i, v in enumerate(values)}
    per_unit = np.zeros((len(pairable), len(values), len(values)))
    for u, vs in enumerate(pairable.values()):
        counts = Counter(index[v] for v in vs.values())
        m = len(vs)
        for c, nc in counts.items():
            for k, nk in counts.items():
                per_unit[u, c, k] = nc * (nk - (1 if c == k else 0)) / (m - 1)
    value = _alpha_from_o(per_unit.sum(axis=0), values, metric) if len(pairable) else float("nan")
    if math.isnan(value):
        return Estimate(value=None, n_units=len(pairable))
    if n_boot <= 0 or len(pairable) < 2:
        return Estimate(value=value, n_units=len(pairable))
    flat = per_unit.reshape(len(pairable), -1)
    sums = _weights(len(pairable), n_boot, seed) @ flat
    draws = np.array([_alpha_from_o(s.reshape(len(values), len(values)), values, metric) for s in sums])
    low, high = _interval(draws, level)
    return Estimate(value=value, low=low, high=high, n_units=len(pairable))


def nominal_agreement_ci(units, *, n_boot=500, level=0.95, seed=0):
    pairable = _pairable(units)
    n = len(pairable)
    if n == 0:
        return {"percent_agreement": Estimate(None), "fleiss_kappa": Estimate(None)}
    categories = sorted({v for vs in pairable.values() for v in vs.values()}, key=repr)
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros((n, len(categories)))
    for u, vs in enumerate(pairable.values()):
        for v in vs.values():
            counts[u, index[v]] += 1
    n_i = counts.sum(axis=1)
    p_i = ((counts * counts).sum(axis=1) - n_i) / (n_i * (n_i - 1))

    def stats(w):
        p_bar = w @ p_i / w.sum(axis=-1)
        p_j = (w @ counts) / (w @ n_i)[..., None]
        pe = (p_j * p_j).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = np.where(pe >= 1, np.where(p_bar >= 1, 1.0, 0.0), (p_bar - pe) / (1 - pe))
        return p_bar, kappa

    p_bar, kappa = stats(np.ones((1, n)))
    result = {"percent_agreement": float(p_bar[0]), "fleiss_kappa": float(kappa[0])}
    if n_boot <= 0 or n < 2:
        return {k: Estimate(v, n_units=n) for k, v in result.items()}
    boot_p, boot_k = stats(_weights(n, n_boot, seed))
    out = {}
    for name, draws in (("percent_agreement", boot_p), ("fleiss_kappa", boot_k)):
        low, high = _interval(draws, level)
        out[name] = Estimate(result[name], low, high, n)
    return out


def cohen_kappa_ci(pairs, *, n_boot=500, level=0.95, seed=0):
    n = len(pairs)
    value = cohen_kappa(pairs)
    if value is None or n_boot <= 0 or n < 2:
        return Estimate(value, n_units=n)
    categories = sorted({v for pair in pairs for v in pair}, key=repr)
    index = {c: i for i, c in enumerate(categories)}
    first = np.zeros((n, len(categories)))
    second = np.zeros((n, len(categories)))
    first[np.arange(n), [index[a] for a, _ in pairs]] = 1
    second[np.arange(n), [index[b] for _, b in pairs]] = 1
    agree = np.array([a == b for a, b in pairs], dtype=float)
    w = _weights(n, n_boot, seed)
    po = w @ agree / n
    pe = ((w @ first) * (w @ second)).sum(axis=1) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = np.where(pe >= 1, np.where(po >= 1, 1.0, 0.0), (po - pe) / (1 - pe))
    low, high = _interval(draws, level)
    return Estimate(value, low, high, n)


def _rows(*, campaign, round_id=None, sources=SCORED_SOURCES):
    qs = Judgment.objects.filter(campaign=campaign, source__in=sources)
    if round_id is not None:
        qs = qs.filter(round_id=round_id)
    return list(qs.values(*ql.JUDGMENT_FIELDS, "round_id", "time_spent_ms").order_by("id"))


def _units(rows, positions):
    nominal: dict = defaultdict(dict)
    strength: dict = defaultdict(dict)
    ranking: dict = defaultdict(dict)
    for r in rows:
        if r["annotator_id"] is None:
            continue
        pos = positions[r["item_id"]]
        nominal[r["item_id"]][r["annotator_id"]] = ql.label(r, pos)
        signed = ql.signed_strength(r, pos)
        if signed is not None:
            strength[r["item_id"]][r["annotator_id"]] = signed
        if r["kind"] == Judgment.Kind.RANKING:
            for response_id, rank in ql.rank_values(r).items():
                ranking[(r["item_id"], response_id)][r["annotator_id"]] = rank
    return dict(nominal), dict(strength), dict(ranking)


def agreement_report(*, campaign, round_id=None, n_boot=200):
    rows = _rows(campaign=campaign, round_id=round_id)
    positions = ql.positions_for({r["item_id"] for r in rows})
    nominal, strength, ranking = _units(rows, positions)
    names = _names({r["annotator_id"] for r in rows if r["annotator_id"]})

    def alpha(units, metric):
        return krippendorff_alpha_ci(units, metric, n_boot=n_boot).as_dict()

    pairs = []
    for (a, b), table in sorted(pairwise_tables(nominal).items(), key=lambda kv: -len(kv[1])):
        agree = sum(x == y for x, y in table) / len(table)
        pairs.append({"annotators": [names.get(a, a), names.get(b, b)], "ids": [a, b], "n_items": len(table),
                      "percent_agreement": round(agree, 4), "cohen_kappa": cohen_kappa_ci(table, n_boot=n_boot).as_dict()})
    outcome = {k: e.as_dict() for k, e in nominal_agreement_ci(nominal, n_boot=n_boot).items()}
    report = {
        "campaign": campaign.pk,
        "round": round_id,
        "judgments": len(rows),
        "annotators": len(names),
        "items_with_overlap": sum(1 for v in nominal.values() if len(v) >= 2),
        "outcome": {**outcome, "krippendorff_alpha_nominal": alpha(nominal, "nominal")},
        "strength": {"krippendorff_alpha_ordinal": alpha(strength, "ordinal")},
        "ranking": {"krippendorff_alpha_ordinal": alpha(ranking, "ordinal")},
        "pairs": pairs,
    }
    if round_id is None:
        by_round: dict = defaultdict(list)
        for r in rows:
            by_round[r["round_id"]].append(r)
        report["rounds"] = []
        for rid, round_rows in sorted(by_round.items()):
            units = _units(round_rows, positions)[0]
            report["rounds"].append({
                "round": rid,
                "judgments": len(round_rows),
                "percent_agreement": percent_agreement(units),
                "krippendorff_alpha_nominal": krippendorff_alpha(units, "nominal"),
            })
    return report
