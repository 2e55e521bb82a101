"""Statistics for annotation quality: pure Python + NumPy, no Django, so exporters, training code and notebooks
can call them on plain data.

- ``agreement``: percent agreement, Cohen's kappa, Fleiss' kappa, Krippendorff's alpha (nominal, ordinal,
  interval, ratio) and a unit-resampling bootstrap for confidence intervals (generic ``bootstrap_ci``, and
  vectorised ``*_ci`` versions for the statistics the API reports), the Wilson interval for proportions.
- ``aggregation``: per-item consensus: majority vote, a reliability-weighted vote posterior (what dynamic
  overlap uses) and Dawid-Skene EM with per-annotator confusion matrices.
- ``rating``: Bradley-Terry (MM) and Elo ratings from pairwise outcomes with bootstrap intervals (the model
  leaderboard).

Data shapes are deliberately plain: a "unit" is anything hashable (an item id), a "coder" anything hashable
(an annotator id), values are hashable labels (or numbers for ordinal / interval metrics).
"""
from .aggregation import Consensus, DawidSkeneResult, dawid_skene, majority_vote, vote_posterior
from .agreement import (
    Estimate,
    bootstrap_ci,
    cohen_kappa,
    cohen_kappa_ci,
    fleiss_kappa,
    fleiss_kappa_from_units,
    krippendorff_alpha,
    krippendorff_alpha_ci,
    nominal_agreement_ci,
    percent_agreement,
    wilson_interval,
)
from .rating import Rating, bradley_terry, elo, ratings_with_ci

__all__ = [
    "Consensus",
    "DawidSkeneResult",
    "Estimate",
    "Rating",
    "bootstrap_ci",
    "bradley_terry",
    "cohen_kappa",
    "cohen_kappa_ci",
    "dawid_skene",
    "elo",
    "fleiss_kappa",
    "fleiss_kappa_from_units",
    "krippendorff_alpha",
    "krippendorff_alpha_ci",
    "majority_vote",
    "nominal_agreement_ci",
    "percent_agreement",
    "ratings_with_ci",
    "vote_posterior",
    "wilson_interval",
]
