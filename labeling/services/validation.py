"""Checks a judgment against its item and its campaign's settings. Pure: no queries, so it can be tested
exhaustively and reused by importers and simulated annotators."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from ..errors import ValidationError
from ..models import Campaign, ComparisonItem, Judgment

MAX_RATIONALE_CHARS = 10_000


@dataclass(frozen=True)
class JudgmentInput:
    """What an annotator sends. Pairwise: exactly one of ``winner`` (a response id), ``tie`` or ``both_bad``,
    with ``strength`` 1-3 only beside a winner. Ranking: ``ranking`` as tie groups of response ids, best first,
    covering each of the item's responses exactly once."""

    winner: int | None = None
    tie: bool = False
    both_bad: bool = False
    strength: int | None = None
    ranking: list[list[int]] | None = None
    rationale: str = ""
    time_spent_ms: int | None = None
    client_id: uuid.UUID | None = None


def _validate_pairwise(*, campaign: Campaign, response_ids: list[int], data: JudgmentInput) -> dict:
    if not campaign.pairwise_enabled:
        raise ValidationError("this campaign does not take pairwise judgments", field="winner")
    if data.ranking:
        raise ValidationError("a pairwise item takes winner / tie / both_bad, not a ranking", field="ranking")
    chosen = [name for name, on in (("winner", data.winner is not None), ("tie", data.tie), ("both_bad", data.both_bad)) if on]
    if len(chosen) != 1:
        raise ValidationError(
            "give exactly one of winner, tie or both_bad" + (f" (got {', '.join(chosen)})" if chosen else ""),
            field="winner",
        )
    if data.tie and not campaign.allow_tie:
        raise ValidationError("this campaign does not allow ties", field="tie")
    if data.both_bad and not campaign.allow_both_bad:
        raise ValidationError("this campaign does not allow both-bad", field="both_bad")
    if data.strength is not None:
        if data.winner is None:
            raise ValidationError("strength goes only with a winner", field="strength")
        if not campaign.strength_enabled:
            raise ValidationError("this campaign does not take a strength of preference", field="strength")
        if data.strength not in (1, 2, 3):
            raise ValidationError(f"strength must be 1, 2 or 3 (got {data.strength})", field="strength")
    if data.winner is not None:
        if data.winner not in response_ids:
            raise ValidationError(f"winner {data.winner} is not one of this item's responses {response_ids}", field="winner")
        loser = next(r for r in response_ids if r != data.winner)
        ranking = [[data.winner], [loser]]
    else:
        ranking = [list(response_ids)]
    return {
        "kind": Judgment.Kind.PAIRWISE,
        "winner_id": data.winner,
        "tie": data.tie,
        "both_bad": data.both_bad,
        "strength": data.strength,
        "ranking": ranking,
    }


def _validate_ranking(*, campaign: Campaign, response_ids: list[int], data: JudgmentInput) -> dict:
    if not campaign.ranking_enabled:
        raise ValidationError("this campaign does not take rankings", field="ranking")
    if data.winner is not None or data.both_bad or data.strength is not None:
        raise ValidationError("a ranking takes only ranking (tie groups), not winner / both_bad / strength", field="ranking")
    groups = data.ranking
    if not isinstance(groups, list) or not groups or not all(isinstance(g, list) and g for g in groups):
        raise ValidationError("ranking must be a non-empty list of non-empty lists of response ids", field="ranking")
    flat = [r for g in groups for r in g]
    if not all(isinstance(r, int) and not isinstance(r, bool) for r in flat):
        raise ValidationError("ranking must hold response ids (integers)", field="ranking")
    if len(flat) != len(set(flat)):
        raise ValidationError("ranking names a response more than once", field="ranking")
    if set(flat) != set(response_ids):
        missing = sorted(set(response_ids) - set(flat))
        extra = sorted(set(flat) - set(response_ids))
        raise ValidationError(
            f"ranking must place each of this item's responses exactly once (missing {missing}, unknown {extra})",
            field="ranking",
        )
    if any(len(g) > 1 for g in groups) and not campaign.allow_tie:
        raise ValidationError("this campaign does not allow ties in rankings", field="ranking")
    return {
        "kind": Judgment.Kind.RANKING,
        "winner_id": None,
        "tie": len(groups) == 1,
        "both_bad": False,
        "strength": None,
        "ranking": [list(g) for g in groups],
    }


def judgment_validate(*, campaign: Campaign, item_kind: str, response_ids: list[int], data: JudgmentInput) -> dict:
    """Return the Judgment fields for ``data`` or raise ValidationError naming the field at fault."""
    if item_kind == ComparisonItem.Kind.PAIRWISE:
        fields = _validate_pairwise(campaign=campaign, response_ids=response_ids, data=data)
    else:
        fields = _validate_ranking(campaign=campaign, response_ids=response_ids, data=data)
    rationale = data.rationale.strip()
    if campaign.rationale == Campaign.Rationale.REQUIRED and not rationale:
        raise ValidationError("this campaign requires a rationale", field="rationale")
    if campaign.rationale == Campaign.Rationale.OFF and rationale:
        raise ValidationError("this campaign does not take a rationale", field="rationale")
    if len(rationale) > MAX_RATIONALE_CHARS:
        raise ValidationError(f"rationale is longer than {MAX_RATIONALE_CHARS} characters", field="rationale")
    if data.time_spent_ms is not None and not 0 <= data.time_spent_ms <= 86_400_000:
        raise ValidationError("time_spent_ms must be between 0 and 86400000", field="time_spent_ms")
    return fields
