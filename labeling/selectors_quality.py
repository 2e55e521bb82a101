"""Quality reads: agreement, annotator reliability, gold accuracy over time, per-item consensus, the review
queue, flags and the model leaderboard. Callers check roles first (admins and researchers read these).

Only judgments by people (``human``, and ``simulated`` ones in tests and demos) are measured; imported
labels have no annotator and adjudicated decisions are final answers, not votes (they override consensus).

``item_consensus`` is the entry point for code that wants labels with a confidence (exports, training):
item id -> ``Consensus(label, confidence, votes, posterior)``, labels as in ``services.quality_labels``.
"""
from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from statistics import median

from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.db.models.functions import TruncDate

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
    cohen_kappa_ci,
    krippendorff_alpha,
    krippendorff_alpha_ci,
    nominal_agreement_ci,
    pairwise_tables,
    percent_agreement,
)
from .quality.rating import bradley_terry, elo, ratings_with_ci
from .services import quality_labels as ql
from .services.quality import SCORED_SOURCES
from .services.quality_checks import annotator_accuracies

METHODS = ("dawid_skene", "majority")


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


def _names(user_ids) -> dict[int, str]:
    return dict(get_user_model().objects.filter(pk__in=list(user_ids)).values_list("pk", "username"))


def agreement_report(*, campaign: Campaign, round_id: int | None = None, n_boot: int = 200) -> dict:
    """Agreement over the campaign (or one round): outcome (A / B / tie / both-bad) as nominal data, strength
    as ordinal data on a signed scale, rankings as ordinal ranks per (item, response); every annotator pair's
    Cohen's kappa; each with a unit-bootstrap 95% interval. Per round too when no round is given."""
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
