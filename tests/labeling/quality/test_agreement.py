"""Agreement statistics against published, hand-computed examples."""
from __future__ import annotations

import pytest

from labeling.quality.agreement import (
    bootstrap_ci,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_from_units,
    krippendorff_alpha,
    pairwise_tables,
    percent_agreement,
)


def _units(rows: dict[str, list]) -> dict:
    """Krippendorff's reliability data matrix (observers x units, None = missing) as {unit: {observer: v}}."""
    n_units = len(next(iter(rows.values())))
    return {u: {o: vals[u] for o, vals in rows.items() if vals[u] is not None} for u in range(n_units)}


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers, 12 units, missing.
_ = None
K2011 = _units(
    {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
        "C": [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
    }
)


@pytest.mark.parametrize(
    ("metric", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)]
)
def test_krippendorff_alpha_reproduces_the_2011_paper_four_observer_example(metric, published):
    assert round(krippendorff_alpha(K2011, metric), 3) == published


def test_krippendorff_alpha_binary_two_observer_example_is_0_095():
    data = _units({"A": [0, 1, 0, 0, 0, 0, 0, 0, 1, 0], "B": [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]})
    assert round(krippendorff_alpha(data, "nominal"), 3) == 0.095


def test_krippendorff_alpha_nominal_two_observer_example_is_0_692():
    data = _units(
        {
            "A": list("aabbdcccedda"),
            "B": list("babbbccceddd"),
        }
    )
    assert round(krippendorff_alpha(data, "nominal"), 3) == 0.692


def test_krippendorff_alpha_is_undefined_without_variation_or_pairs():
    assert krippendorff_alpha({1: {"a": "x", "b": "x"}, 2: {"a": "x", "b": "x"}}) is None
    assert krippendorff_alpha({1: {"a": "x"}, 2: {"b": "y"}}) is None


def test_cohen_kappa_wikipedia_two_by_two_example_is_0_4():
    # 50 grant proposals: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> po 0.7, pe 0.5, kappa 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_cohen_kappa_perfect_and_chance_cases():
    assert cohen_kappa([("a", "a"), ("b", "b")]) == pytest.approx(1.0)
    assert cohen_kappa([("a", "a"), ("a", "a")]) == 1.0
    assert cohen_kappa([]) is None
    assert cohen_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)


FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_wikipedia_example_is_0_210():
    assert round(fleiss_kappa(FLEISS_WIKIPEDIA), 3) == 0.210


def test_fleiss_kappa_from_units_matches_the_count_table():
    units = {}
    for s, row in enumerate(FLEISS_WIKIPEDIA):
        labels = [c for c, n in enumerate(row) for _ in range(n)]
        units[s] = {f"r{i}": lab for i, lab in enumerate(labels)}
    assert round(fleiss_kappa_from_units(units), 3) == 0.210
    # Fleiss' observed agreement P-bar is the mean pairwise agreement: 0.378 in the same example.
    assert round(percent_agreement(units), 3) == 0.378


def test_percent_agreement_counts_pairs_within_units():
    units = {1: {"a": "A", "b": "A", "c": "B"}, 2: {"a": "A", "b": "A"}, 3: {"a": "B"}}
    assert percent_agreement(units) == pytest.approx((1 / 3 + 1) / 2)


def test_pairwise_tables_pair_coders_on_shared_units():
    units = {1: {"a": 1, "b": 2}, 2: {"a": 1, "b": 1, "c": 3}}
    tables = pairwise_tables(units)
    assert tables[("a", "b")] == [(1, 2), (1, 1)]
    assert tables[("a", "c")] == [(1, 3)]


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    est = bootstrap_ci(lambda u: krippendorff_alpha(u, "ordinal"), K2011, n_boot=300, seed=1)
    again = bootstrap_ci(lambda u: krippendorff_alpha(u, "ordinal"), K2011, n_boot=300, seed=1)
    assert est.low <= est.value <= est.high and est.high - est.low > 0.01
    assert (est.low, est.high) == (again.low, again.high)
    assert est.n_units == 12


def test_wilson_interval_by_hand():
    from labeling.quality.agreement import wilson_interval

    # 0 of 10: the upper bound is z^2 / (n + z^2) = 3.8415 / 13.8415.
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(1 - high) and high == pytest.approx(0.76341, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_vectorised_intervals_agree_with_the_generic_bootstrap():
    from labeling.quality.agreement import cohen_kappa_ci, krippendorff_alpha_ci, nominal_agreement_ci

    fast = krippendorff_alpha_ci(K2011, "ordinal", n_boot=1000, seed=3)
    slow = bootstrap_ci(lambda u: krippendorff_alpha(u, "ordinal"), K2011, n_boot=1000, seed=3)
    assert round(fast.value, 3) == 0.815 and abs(fast.low - slow.low) < 0.1 and abs(fast.high - slow.high) < 0.05
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    kappa = cohen_kappa_ci(pairs, n_boot=1000)
    generic = bootstrap_ci(lambda u: cohen_kappa(list(u.values())), dict(enumerate(pairs)), n_boot=1000)
    assert kappa.value == pytest.approx(0.4) and abs(kappa.low - generic.low) < 0.06 and abs(kappa.high - generic.high) < 0.06
    nominal = nominal_agreement_ci(K2011, n_boot=500)
    assert nominal["percent_agreement"].value == pytest.approx(percent_agreement(K2011))
    assert nominal["fleiss_kappa"].value == pytest.approx(fleiss_kappa_from_units(K2011))
    assert nominal["fleiss_kappa"].low < nominal["fleiss_kappa"].value <= nominal["fleiss_kappa"].high
