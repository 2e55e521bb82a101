"""How stored judgments become the values the quality statistics work on. One place, so agreement, gold
scoring, consensus, dynamic overlap and the leaderboard all read a judgment the same way.

Positions are the item's canonical order (``ItemResponse.position``), never the order a slot showed, so two
annotators who saw A and B swapped still agree when they chose the same response.

- ``label``: nominal outcome. Pairwise: "A" (the response at position 0 won), "B", "tie", "both_bad".
  Ranking: the letter of the single top-ranked response ("A", "B", "C", ...) or "tie" when the top group
  holds several.
- ``signed_strength``: ordinal strength on a signed scale, +s when A won with strength s (1 when no
  strength was given), -s when B won, 0 for a tie; both-bad has no value (missing).
- ``rank_values``: for rankings, each response's rank (1 = best; tied responses share the group's rank), so
  Krippendorff's ordinal alpha can run over (item, response) units.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..models import ItemResponse

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
JUDGMENT_FIELDS = ("id", "item_id", "annotator_id", "kind", "winner_id", "tie", "both_bad", "strength", "ranking", "source")


def positions_for(item_ids: Iterable[int]) -> dict[int, dict[int, int]]:
    """item id -> {response id: canonical position}; one query."""
    result: dict[int, dict[int, int]] = {}
    rows = ItemResponse.objects.filter(item_id__in=list(item_ids)).values_list("item_id", "response_id", "position")
    for item_id, response_id, position in rows:
        result.setdefault(item_id, {})[response_id] = position
    return result


def label(judgment: Mapping, positions: Mapping[int, int]) -> str:
    """The nominal label of a judgment (a dict with ``JUDGMENT_FIELDS``)."""
    if judgment["kind"] == "pairwise":
        if judgment["both_bad"]:
            return "both_bad"
        if judgment["winner_id"] is None:
            return "tie"
        return LETTERS[positions[judgment["winner_id"]]]
    top = judgment["ranking"][0]
    return LETTERS[positions[top[0]]] if len(top) == 1 else "tie"


def signed_strength(judgment: Mapping, positions: Mapping[int, int]) -> int | None:
    if judgment["kind"] != "pairwise" or judgment["both_bad"]:
        return None
    if judgment["winner_id"] is None:
        return 0
    size = judgment["strength"] or 1
    return size if positions[judgment["winner_id"]] == 0 else -size


def rank_values(judgment: Mapping) -> dict[int, int]:
    """response id -> rank (1 = best) from the tie groups."""
    values, rank = {}, 1
    for group in judgment["ranking"]:
        for response_id in group:
            values[response_id] = rank
        rank += len(group)
    return values


def possible_labels(*, kind: str, n_responses: int, allow_tie: bool, allow_both_bad: bool) -> list[str]:
    labels = list(LETTERS[:n_responses])
    if allow_tie:
        labels.append("tie")
    if allow_both_bad and kind == "pairwise":
        labels.append("both_bad")
    return labels


def gold_answer_matches(gold_answer: Mapping, judgment: Mapping, positions: Mapping[int, int]) -> bool:
    """A pairwise gold answer is a label; a ranking gold answer matches when the judgment's top group is the
    gold top group (the part of a ranking a gold check can fairly demand)."""
    if "ranking" in gold_answer:
        return set(judgment["ranking"][0]) == set(gold_answer["ranking"][0])
    return label(judgment, positions) == gold_answer.get("label")
