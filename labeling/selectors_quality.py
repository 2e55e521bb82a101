"""Quality reads: agreement, annotator reliability, gold accuracy over time, per-item consensus, the review
queue, flags and the model leaderboard. Callers check roles first (admins and researchers read these).

Only judgments by people (``human``, and ``simulated`` ones in tests and demos) are measured; imported
labels have no annotator and adjudicated decisions are final answers, not votes (they override consensus).

``item_consensus`` is the entry point for code that wants labels with a confidence (exports, training):
item id -> ``Consensus(label, confidence, votes, posterior)``, labels as in ``services.quality_labels``.
"""
from __future__ import annotations

import json
from array import array
from collections import Counter, defaultdict
from itertools import combinations
from statistics import median

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import Case, Count, OuterRef, Q, Subquery, TextField, When
from django.db.models.functions import Cast, TruncDate

from .errors import NotFound
from .models import (
    Assignment,
    Campaign,
    ComparisonItem,
    GoldResult,
    ItemResponse,
    Judgment,
    Membership,
    QualityFlag,
    Role,
)
from .quality.aggregation import Consensus, dawid_skene, majority_vote
from .quality.agreement import (
    cohen_kappa,
    cohen_kappa_ci_codes,
    krippendorff_alpha_ci_counts,
    krippendorff_alpha_counts,
    nominal_agreement_ci_counts,
    pairwise_tables,
)
from .quality.rating import bradley_terry, elo, ratings_with_ci
from .services import quality_labels as ql
from .services.quality import SCORED_SOURCES
from .services.quality_checks import annotator_accuracies

METHODS = ("dawid_skene", "majority")
# agreement_report's columns (tuples, not dicts) and the keys quality_labels reads them under.
_COLUMNS = ("item_id", "annotator_id", "kind", "winner_id", "winner_position", "both_bad", "strength", "ranks", "round_id")
_KEYS = ("item_id", "annotator_id", "kind", "winner_id", "winner_position", "both_bad", "strength", "ranking", "round_id")
_NO_STRENGTH = -128  # signed strength code for "no value" (both-bad, rankings)


def _rows(*, campaign: Campaign, round_id: int | None = None, sources=SCORED_SOURCES) -> list[dict]:
    qs = Judgment.objects.filter(campaign=campaign, source__in=sources)
    if round_id is not None:
        qs = qs.filter(round_id=round_id)
    return list(qs.values(*ql.JUDGMENT_FIELDS, "round_id", "time_spent_ms").order_by("id"))


def _units(rows: list[dict], positions: dict) -> tuple[dict, dict, dict]:
    """(nominal outcome units, signed strength units, ranking units) keyed as the statistics expect."""
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


def _encoded_judgments(*, campaign: Campaign, round_id: int | None) -> dict:
    """One pass over the campaign's scored judgments (id order, tuples of the needed columns, streamed) into
    compact arrays: per judgment with an annotator its item, annotator index, outcome label code, signed
    strength (``_NO_STRENGTH`` when missing) and round; ranking entries per (item, response) unit; and the
    judgment count per round. At a million judgments the dict rows this replaces took about 2 GB."""
    qs = Judgment.objects.filter(campaign=campaign, source__in=SCORED_SOURCES)
    if round_id is not None:
        qs = qs.filter(round_id=round_id)
    positions = ql.positions_for(
        qs.filter(kind=Judgment.Kind.RANKING).order_by().values_list("item_id", flat=True).distinct())
    winner_position = ItemResponse.objects.filter(item_id=OuterRef("item_id"), response_id=OuterRef("winner_id"))
    rows = qs.annotate(
        winner_position=Subquery(winner_position.values("position")[:1]),
        # Only rankings need the ranking column: pairwise rows skip the JSON decoding.
        # As text, decoded here: a JSONField converter would run on every row, ranking or not.
        ranks=Case(When(kind=Judgment.Kind.RANKING, then=Cast("ranking", TextField())), default=None),
    ).values_list(*_COLUMNS).order_by("id")
    cols = {name: array(code) for name, code in (("item", "q"), ("coder", "i"), ("label", "b"), ("strength", "b"),
                                                  ("round", "i"), ("r_unit", "q"), ("r_coder", "i"), ("r_value", "i"))}
    coders, labels, rounds, rank_units, per_round = {}, {}, {}, {}, Counter()
    for row in rows.iterator(chunk_size=5000):
        r = dict(zip(_KEYS, row, strict=True))
        per_round[r["round_id"]] += 1
        if r["ranking"] is not None:
            r["ranking"] = json.loads(r["ranking"])
        if r["annotator_id"] is None:
            continue
        pos = positions[r["item_id"]] if r["kind"] == Judgment.Kind.RANKING else {r["winner_id"]: r["winner_position"]}
        coder = coders.setdefault(r["annotator_id"], len(coders))
        signed = ql.signed_strength(r, pos)
        for name, value in (("item", r["item_id"]), ("coder", coder), ("round", rounds.setdefault(r["round_id"], len(rounds))),
                            ("label", labels.setdefault(ql.label(r, pos), len(labels))),
                            ("strength", _NO_STRENGTH if signed is None else signed)):
            cols[name].append(value)
        if r["kind"] == Judgment.Kind.RANKING:
            for response_id, rank in ql.rank_values(r).items():
                cols["r_unit"].append(rank_units.setdefault((r["item_id"], response_id), len(rank_units)))
                cols["r_coder"].append(coder)
                cols["r_value"].append(rank)
    arrays = {name: np.frombuffer(col, dtype=col.typecode) if col else np.zeros(0, dtype=col.typecode)
              for name, col in cols.items()}
    return {**arrays, "coders": list(coders), "labels": list(labels), "rounds": list(rounds), "per_round": per_round}


def _latest(unit: np.ndarray, coder: np.ndarray, value: np.ndarray, n_coders: int) -> tuple:
    """What ``{unit: {coder: value}}`` built in row order holds, as arrays: a later judgment by the same coder on
    the same unit replaces the earlier one, units keep the order they first appeared in. Returns (each entry's
    unit position, coder, value)."""
    if not len(unit):
        return unit, coder, value
    key = unit.astype(np.int64) * n_coders + coder
    keep = np.sort(len(key) - 1 - np.unique(key[::-1], return_index=True)[1])
    uniq, first = np.unique(unit, return_index=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
    return rank[np.searchsorted(uniq, unit[keep])], coder[keep], value[keep]


def _table(unit_pos: np.ndarray, codes: np.ndarray, decoded: list, sort_key, pairable_only: bool = True) -> tuple:
    """(units x values count table, values in ``sort_key`` order); values are those present in the table's units."""
    sizes = np.bincount(unit_pos) if len(unit_pos) else np.zeros(0, dtype=np.int64)
    if pairable_only:
        keep = sizes[unit_pos] >= 2
        unit_pos = (np.cumsum(sizes >= 2) - 1)[unit_pos[keep]]
        codes, sizes = codes[keep], sizes[sizes >= 2]
    present = sorted(set(codes.tolist()), key=lambda c: sort_key(decoded[c]))
    index = np.zeros(len(decoded), dtype=np.int64)
    index[present] = np.arange(len(present))
    table = np.bincount(unit_pos * len(present) + index[codes], minlength=len(sizes) * len(present))
    return table.reshape(len(sizes), len(present)).astype(np.int32), [decoded[c] for c in present]


def _alpha_key(v):
    return isinstance(v, str), v


def _names(user_ids) -> dict[int, str]:
    return dict(get_user_model().objects.filter(pk__in=list(user_ids)).values_list("pk", "username"))


def _pairs(unit_pos, coder, label, coder_ids: list, labels: list, names: dict, n_boot: int) -> list[dict]:
    """Every annotator pair's table over the items both judged, as ``pairwise_tables`` orders it (coders by
    ``repr`` within an item, tables by first appearance, then most shared items first), with Cohen's kappa."""
    if not len(unit_pos):
        return []
    order_of = np.empty(len(coder_ids), dtype=np.int64)
    order_of[sorted(range(len(coder_ids)), key=lambda c: repr(coder_ids[c]))] = np.arange(len(coder_ids))
    idx = np.lexsort((order_of[coder], unit_pos))
    unit_pos, coder, label = unit_pos[idx], coder[idx], label[idx]
    # Entry i pairs with entry i + gap of the same item: all of combinations(), first coder before second.
    gaps = range(1, int(np.bincount(unit_pos).max()))
    first = np.concatenate([np.zeros(0, dtype=np.int64)] + [np.nonzero(unit_pos[g:] == unit_pos[:-g])[0] for g in gaps])
    second = np.concatenate([np.zeros(0, dtype=np.int64)] + [np.nonzero(unit_pos[g:] == unit_pos[:-g])[0] + g for g in gaps])
    if not len(first):
        return []
    key = coder[first].astype(np.int64) * len(coder_ids) + coder[second]
    o = np.lexsort((unit_pos[first], key))
    first, second, key = first[o], second[o], key[o]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    appear = np.lexsort((second[starts], first[starts], unit_pos[first[starts]])).tolist()
    result = []
    for g in sorted(appear, key=lambda g: -(ends[g] - starts[g])):
        x, y = label[first[starts[g]:ends[g]]], label[second[starts[g]:ends[g]]]
        cats = sorted({labels[c] for c in np.concatenate([x, y]).tolist()}, key=repr)
        code = np.array([cats.index(lab) if lab in cats else -1 for lab in labels], dtype=np.int64)
        a, b = coder_ids[int(coder[first[starts[g]]])], coder_ids[int(coder[second[starts[g]]])]
        result.append({"annotators": [names.get(a, a), names.get(b, b)], "ids": [a, b], "n_items": len(x),
                       "percent_agreement": round(int((x == y).sum()) / len(x), 4),
                       "cohen_kappa": cohen_kappa_ci_codes(code[x], code[y], len(cats), n_boot=n_boot).as_dict()})
    return result


def _percent_agreement(table: np.ndarray) -> float | None:
    """``percent_agreement`` from a pairable count table: each unit's share of agreeing pairs, averaged (same
    integer ratios, summed in unit order as the dict version does)."""
    if not len(table):
        return None
    t = table.astype(np.int64)
    m = t.sum(axis=1)
    shares = (t * (t - 1) // 2).sum(axis=1) / (m * (m - 1) // 2)
    return sum(shares.tolist()) / len(shares)


def agreement_report(*, campaign: Campaign, round_id: int | None = None, n_boot: int = 200) -> dict:
    """Agreement over the campaign (or one round): outcome (A / B / tie / both-bad) as nominal data, strength
    as ordinal data on a signed scale, rankings as ordinal ranks per (item, response); every annotator pair's
    Cohen's kappa; each with a unit-bootstrap 95% interval. Per round too when no round is given.

    Works on compact arrays (``_encoded_judgments``) and count tables, never on per-judgment dicts: the
    snapshot manifest calls this on campaigns of a million judgments."""
    enc = _encoded_judgments(campaign=campaign, round_id=round_id)
    n_coders = len(enc["coders"])
    coder_ids = np.array(enc["coders"], dtype=np.int64)
    names = _names(c for c in enc["coders"] if c)
    unit_pos, coder, label = _latest(enc["item"], enc["coder"], enc["label"], n_coders)
    nominal, label_values = _table(unit_pos, label, enc["labels"], _alpha_key)
    categories, _ = _table(unit_pos, label, enc["labels"], repr)
    has_strength = enc["strength"] != _NO_STRENGTH
    s_pos, _, s_val = _latest(enc["item"][has_strength], enc["coder"][has_strength], enc["strength"][has_strength], n_coders)
    strength, strength_values = _table(s_pos, s_val.astype(np.int64) - _NO_STRENGTH, list(range(_NO_STRENGTH, 128)), _alpha_key)
    r_pos, _, r_val = _latest(enc["r_unit"], enc["r_coder"], enc["r_value"], n_coders)
    ranks = sorted(set(r_val.tolist()))
    ranking, rank_values = _table(r_pos, np.searchsorted(ranks, r_val), ranks, _alpha_key)

    def alpha(table, values, metric):
        return krippendorff_alpha_ci_counts(table, values, metric, n_boot=n_boot).as_dict()

    outcome = {k: e.as_dict() for k, e in nominal_agreement_ci_counts(categories, n_boot=n_boot).items()}
    report = {
        "campaign": campaign.pk,
        "round": round_id,
        "judgments": sum(enc["per_round"].values()),
        "annotators": len(names),
        "items_with_overlap": len(nominal),
        "outcome": {**outcome, "krippendorff_alpha_nominal": alpha(nominal, label_values, "nominal")},
        "strength": {"krippendorff_alpha_ordinal": alpha(strength, strength_values, "ordinal")},
        "ranking": {"krippendorff_alpha_ordinal": alpha(ranking, rank_values, "ordinal")},
        "pairs": _pairs(unit_pos, coder, label, list(coder_ids.tolist()), enc["labels"], names, n_boot),
    }
    if round_id is None:
        report["rounds"] = []
        for rid in sorted(enc["per_round"]):
            code = enc["rounds"].index(rid) if rid in enc["rounds"] else -1
            mine = enc["round"] == code
            pos, _, lab = _latest(enc["item"][mine], enc["coder"][mine], enc["label"][mine], n_coders)
            table, values = _table(pos, lab, enc["labels"], _alpha_key, pairable_only=False)
            report["rounds"].append({
                "round": rid,
                "judgments": enc["per_round"][rid],
                "percent_agreement": _percent_agreement(table[table.sum(axis=1) >= 2]),
                "krippendorff_alpha_nominal": krippendorff_alpha_counts(table, values, "nominal"),
            })
    return report


def item_consensus(
    *, campaign: Campaign, method: str = "dawid_skene", round_ids: list[int] | None = None
) -> dict[int, Consensus]:
    """item id -> consensus label with a confidence, for exports and training (use ``confidence`` as a sample
    weight or margin). ``method``: "dawid_skene" (reliability-aware EM over the whole campaign) or "majority".
    An adjudicated item takes the adjudicator's label with confidence 1."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    qs_rows = _rows(campaign=campaign, sources=(*SCORED_SOURCES, Judgment.Source.ADJUDICATED))
    if round_ids:
        qs_rows = [r for r in qs_rows if r["round_id"] in set(round_ids)]
    positions = ql.positions_for({r["item_id"] for r in qs_rows})
    triples, final = [], {}
    for r in qs_rows:
        lab = ql.label(r, positions[r["item_id"]])
        if r["source"] == Judgment.Source.ADJUDICATED:
            final[r["item_id"]] = lab
        elif r["annotator_id"] is not None:
            triples.append((r["item_id"], r["annotator_id"], lab))
    result = (dawid_skene(triples).items if method == "dawid_skene" else majority_vote(triples)) if triples else {}
    for item_id, lab in final.items():
        votes = result[item_id].votes if item_id in result else 0
        result[item_id] = Consensus(label=lab, confidence=1.0, votes=votes, posterior={lab: 1.0})
    return result


def annotator_report(*, campaign: Campaign) -> list[dict]:
    """Per annotator: judgments, median time, gold accuracy (raw and smoothed), Dawid-Skene reliability,
    agreement with the others (pairwise share and Cohen's kappa pooled over their pairs), open flags, pause."""
    rows = _rows(campaign=campaign)
    positions = ql.positions_for({r["item_id"] for r in rows})
    nominal = _units(rows, positions)[0]
    triples = [(item, a, lab) for item, coders in nominal.items() for a, lab in coders.items()]
    reliability = dawid_skene(triples).reliability if triples else {}
    members = Membership.objects.filter(campaign=campaign, role=Role.ANNOTATOR).values_list("user_id", "paused", "pause_reason")
    pause = {u: (p, reason) for u, p, reason in members}
    ids = {r["annotator_id"] for r in rows if r["annotator_id"]} | set(pause)
    names = _names(ids)
    gold = {
        g["annotator_id"]: g
        for g in GoldResult.objects.filter(campaign=campaign).values("annotator_id").annotate(
            n=Count("id"), right=Count("id", filter=Q(correct=True))
        )
    }
    smoothed = annotator_accuracies(campaign=campaign, annotator_ids=ids)
    flags = dict(
        QualityFlag.objects.filter(campaign=campaign, resolved_at__isnull=True)
        .values_list("annotator_id").annotate(n=Count("id")).values_list("annotator_id", "n")
    )
    with_others: dict = defaultdict(list)
    for (a, b), table in pairwise_tables(nominal).items():
        with_others[a] += table
        with_others[b] += [(y, x) for x, y in table]
    times: dict = defaultdict(list)
    for r in rows:
        if r["time_spent_ms"] is not None:
            times[r["annotator_id"]].append(r["time_spent_ms"])
    report = []
    for a in sorted(ids, key=lambda x: names.get(x, "")):
        table = with_others.get(a, [])
        g = gold.get(a)
        report.append({
            "annotator": a,
            "username": names.get(a, ""),
            "judgments": sum(1 for r in rows if r["annotator_id"] == a),
            "median_time_ms": median(times[a]) if times[a] else None,
            "gold_judged": g["n"] if g else 0,
            "gold_accuracy": round(g["right"] / g["n"], 4) if g else None,
            "gold_accuracy_smoothed": round(smoothed[a], 4),
            "reliability": round(reliability[a], 4) if a in reliability else None,
            "agreement_with_others": round(sum(x == y for x, y in table) / len(table), 4) if table else None,
            "kappa_with_others": cohen_kappa(table) if table else None,
            "open_flags": flags.get(a, 0),
            "paused": pause.get(a, (False, ""))[0],
            "pause_reason": pause.get(a, (False, ""))[1],
        })
    return report


def gold_accuracy_over_time(*, campaign: Campaign) -> list[dict]:
    """Gold accuracy per annotator per day, oldest first."""
    rows = (
        GoldResult.objects.filter(campaign=campaign)
        .annotate(day=TruncDate("created_at"))
        .values("annotator_id", "annotator__username", "day")
        .annotate(n=Count("id"), right=Count("id", filter=Q(correct=True)))
        .order_by("day", "annotator__username")
    )
    return [
        {"annotator": r["annotator_id"], "username": r["annotator__username"], "day": r["day"], "gold_judged": r["n"],
         "correct": r["right"], "accuracy": round(r["right"] / r["n"], 4)}
        for r in rows
    ]


def gold_list(*, campaign: Campaign):
    return ComparisonItem.objects.filter(campaign=campaign, is_gold=True).annotate(
        gold_judged=Count("gold_results"), gold_correct=Count("gold_results", filter=Q(gold_results__correct=True))
    ).order_by("id")


def flag_list(*, campaign: Campaign, annotator_id: int | None = None, open_only: bool = False, kind: str | None = None):
    qs = QualityFlag.objects.filter(campaign=campaign).select_related("annotator", "resolved_by")
    if annotator_id is not None:
        qs = qs.filter(annotator_id=annotator_id)
    if open_only:
        qs = qs.filter(resolved_at__isnull=True)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-id")


def review_queue(*, campaign: Campaign, method: str = "majority", limit: int = 200) -> list[dict]:
    """Items whose judgments disagree beyond ``campaign.review_threshold`` (consensus confidence below it,
    or no majority at all), done collecting (no open slot) and not yet adjudicated: most contested first."""
    consensus = item_consensus(campaign=campaign, method=method)
    adjudicated = set(
        Judgment.objects.filter(campaign=campaign, source=Judgment.Source.ADJUDICATED).values_list("item_id", flat=True)
    )
    collecting = set(
        Assignment.objects.filter(campaign=campaign).exclude(state=Assignment.State.DONE).values_list("item_id", flat=True)
    )
    contested = [
        (item_id, c) for item_id, c in consensus.items()
        if c.votes >= 2 and item_id not in adjudicated and item_id not in collecting
        and (c.label is None or c.confidence < campaign.review_threshold)
    ]
    contested.sort(key=lambda pair: (pair[1].confidence, pair[0]))
    return [
        {"item": item_id, "label": c.label, "confidence": round(c.confidence, 4), "votes": c.votes,
         "distribution": {str(k): round(v, 4) for k, v in c.posterior.items()}}
        for item_id, c in contested[:limit]
    ]


def _outcomes(rows: list[dict], models: dict) -> list[tuple]:
    """Pairwise outcomes between model names: ties and both-bad count as half a win each (as Arena does);
    a ranking yields one outcome per pair of responses from different models."""
    outcomes = []
    for r in rows:
        rank = ql.rank_values(r)
        if r["kind"] == Judgment.Kind.PAIRWISE and r["both_bad"]:
            rank = dict.fromkeys(rank, 1)
        for x, y in combinations(sorted(rank), 2):
            mx, my = models.get(x), models.get(y)
            if mx is None or my is None or mx == my:
                continue
            score = 1.0 if rank[x] < rank[y] else 0.0 if rank[x] > rank[y] else 0.5
            outcomes.append((mx, my, score))
    return outcomes


def _consensus_outcomes(*, campaign: Campaign, round_id: int | None, models: dict) -> list[tuple]:
    """One outcome per item from its Dawid-Skene consensus: the consensus top response beats the others;
    a consensus tie or both-bad is half a win each."""
    consensus = item_consensus(campaign=campaign, round_ids=[round_id] if round_id else None)
    links = ItemResponse.objects.filter(item_id__in=list(consensus)).values_list("item_id", "response_id", "position")
    by_item: dict = defaultdict(dict)
    for item_id, response_id, position in links:
        by_item[item_id][ql.LETTERS[position]] = response_id
    rows = []
    for item_id, c in consensus.items():
        responses = by_item[item_id]
        if c.label in responses:
            ranking = [[responses[c.label]], [r for lab, r in sorted(responses.items()) if lab != c.label]]
        else:
            ranking = [list(responses.values())]
        rows.append({"kind": Judgment.Kind.RANKING, "both_bad": False, "ranking": ranking})
    return _outcomes(rows, models)


def leaderboard(
    *, campaign: Campaign, method: str = "bradley_terry", basis: str = "judgments", n_boot: int = 200,
    round_id: int | None = None,
) -> dict:
    """Ratings of the campaign's model versions (``Response.model_name``) from human judgments, best first,
    with bootstrap 95% intervals. ``method``: "bradley_terry" (default) or "elo". ``basis``: "judgments"
    (every vote is a comparison, as Arena counts) or "consensus" (one comparison per item from its
    Dawid-Skene consensus, so unreliable annotators' votes do not dilute the ratings)."""
    if method not in ("bradley_terry", "elo"):
        raise ValueError("method must be bradley_terry or elo")
    if basis not in ("judgments", "consensus"):
        raise ValueError("basis must be judgments or consensus")
    models = dict(
        ItemResponse.objects.filter(item__campaign=campaign).values_list("response_id", "response__model_name")
    )
    if basis == "consensus":
        outcomes = _consensus_outcomes(campaign=campaign, round_id=round_id, models=models)
    else:
        outcomes = _outcomes(_rows(campaign=campaign, round_id=round_id), models)
    board = ratings_with_ci(outcomes, method=bradley_terry if method == "bradley_terry" else elo, n_boot=n_boot)
    return {"method": method, "basis": basis, "comparisons": len(outcomes), "models": [r.as_dict() for r in board]}


def campaign_item_get(*, campaign: Campaign, item_id: int) -> ComparisonItem:
    """An item of ``campaign`` with its responses (the caller has checked the role), else NotFound."""
    item = ComparisonItem.objects.filter(campaign=campaign, pk=item_id).prefetch_related("item_responses").first()
    if item is None:
        raise NotFound(f"item {item_id} not found in campaign {campaign.pk}")
    return item
