"""The compact bootstrap pieces: per-pattern weights drawn in blocks are the dense multinomial weights summed
per pattern (same draws for the same seed), and the count-table statistics equal the unit-mapping ones."""
from __future__ import annotations

import random

import numpy as np
import pytest

from labeling.quality.agreement import (
    _coincidences,
    _grouped_weights,
    _weights,
    count_table,
    krippendorff_alpha,
    krippendorff_alpha_counts,
)


@pytest.mark.parametrize(("n_units", "n_boot"), [(7, 3), (1_000, 50), (300_000, 9)])
def test_grouped_weights_are_the_dense_multinomial_weights_summed_per_group(n_units, n_boot):
    groups = np.random.default_rng(1).integers(0, 5, size=n_units)
    dense = _weights(n_units, n_boot, seed=3)
    expected = np.stack([np.bincount(groups, weights=row, minlength=5) for row in dense])
    assert np.array_equal(_grouped_weights(groups, 5, n_boot, seed=3), expected)
    assert not np.array_equal(_grouped_weights(groups, 5, n_boot, seed=4), expected)


def test_alpha_from_a_count_table_is_the_same_float_as_alpha_from_units_with_singletons():
    rng = random.Random(5)
    units = {u: {c: rng.choice([-3, -1, 0, 1, 2, 3]) for c in rng.sample(range(6), rng.choice([1, 2, 3, 4]))}
             for u in range(200)}
    values, _ = _coincidences(units)
    table = count_table(units, values)
    for metric in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha_counts(table, values, metric) == krippendorff_alpha(units, metric)  # same floats
