"""Reads for the web UI that the labeling selectors don't offer: the home page's campaigns with roles, the
dashboard's numbers, the researcher pages' lists. Read-only, a few aggregate queries each, never a query per
row. Callers have already checked roles with ``labeling.selectors.campaign_get_for_roles``."""
from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Avg, Count, Max, Q, QuerySet
from django.db.models.functions import Trunc
from django.http import QueryDict
from django.utils import timezone

from labeling.exporters import EXPORTERS
from labeling.importers import FORMATS
from labeling.models import Assignment, Campaign, ComparisonItem, Judgment, Membership, Role
from labeling.selectors import campaign_list, campaign_stats
from labeling.selectors_governance import export_job_list
from labeling.selectors_quality import item_consensus

# The timeline's bucket: fine enough to show a live session, coarse enough to stay under ~200 points.
_BUCKETS = [(timedelta(hours=3), "minute"), (timedelta(days=7), "hour")]


def campaigns_with_roles(*, user: AbstractBaseUser) -> list[tuple[Campaign, list[str]]]:
    """The campaigns ``user`` may see, each with the roles they hold in it (staff: those they hold, if any)."""
    campaigns = list(campaign_list(user=user))
    roles: dict[int, list[str]] = {}
    for campaign_id, role in Membership.objects.filter(user=user).values_list("campaign_id", "role").order_by("role"):
        roles.setdefault(campaign_id, []).append(role)
    return [(c, roles.get(c.pk, [])) for c in campaigns]


def _per_annotator(campaign: Campaign, now: datetime) -> list[dict]:
    """Each annotator of the campaign (and anyone else who judged in it) with totals and pace."""
    hour_ago = now - timedelta(hours=1)
    rows = (
        Judgment.objects.filter(campaign=campaign, annotator__isnull=False)
        .values("annotator_id")
        .annotate(
            total=Count("id"),
            last_hour=Count("id", filter=Q(created_at__gte=hour_ago)),
            avg_ms=Avg("time_spent_ms"),
            last_at=Max("created_at"),
        )
    )
    by_user = {r["annotator_id"]: r for r in rows}
    leased = dict(
        Assignment.objects.filter(campaign=campaign, state=Assignment.State.LEASED, lease_expires_at__gte=now)
        .values_list("annotator_id")
        .annotate(n=Count("id"))
        .values_list("annotator_id", "n")
    )
    annotator_ids = set(by_user) | set(
        Membership.objects.filter(campaign=campaign, role=Role.ANNOTATOR).values_list("user_id", flat=True)
    )
    names = dict(get_user_model().objects.filter(pk__in=annotator_ids).values_list("pk", "username"))
    out = []
    for uid in annotator_ids:
        row = by_user.get(uid, {})
        avg_ms = row.get("avg_ms")
        out.append(
            {
                "id": uid,
                "username": names.get(uid, f"user {uid}"),
                "total": row.get("total", 0),
                "last_hour": row.get("last_hour", 0),
                "avg_seconds": round(avg_ms / 1000, 1) if avg_ms is not None else None,
                "last_at": row["last_at"].isoformat() if row.get("last_at") else None,
                "working": bool(leased.get(uid)),
            }
        )
    return sorted(out, key=lambda r: (-r["total"], r["username"]))


def _timeline(campaign: Campaign, now: datetime) -> dict:
    """Judgments per time bucket since the first one: the client draws the cumulative curve."""
    judgments = Judgment.objects.filter(campaign=campaign)
    first = judgments.order_by("created_at").values_list("created_at", flat=True).first()
    if first is None:
        return {"bucket": "minute", "points": []}
    kind = next((k for span, k in _BUCKETS if now - first <= span), "day")
    rows = (
        judgments.annotate(at=Trunc("created_at", kind))
        .values("at")
        .annotate(n=Count("id"))
        .order_by("at")
        .values_list("at", "n")
    )
    return {"bucket": kind, "points": [[at.isoformat(), n] for at, n in rows]}


def dashboard_numbers(*, campaign: Campaign, now: datetime | None = None) -> dict:
    """Everything the live dashboard shows, as JSON-ready data."""
    now = now or timezone.now()
    stats = campaign_stats(campaign=campaign)
    last_hour = Judgment.objects.filter(campaign=campaign, created_at__gte=now - timedelta(hours=1)).count()
    retired = ComparisonItem.objects.filter(campaign=campaign, status=ComparisonItem.Status.RETIRED).count()
    return {
        "generated_at": now.isoformat(),
        "campaign": {"id": campaign.pk, "name": campaign.name, "status": campaign.status, "overlap": campaign.overlap},
        **stats,
        "items_remaining": stats["items_total"] - stats["items_complete"] - retired,
        "queue_depth": stats["slots_available"] + stats["slots_leased"],
        "judgments_last_hour": last_hour,
        "annotators": _per_annotator(campaign, now),
        "timeline": _timeline(campaign, now),
    }


def judgment_annotators(*, campaign: Campaign) -> QuerySet:
    """Users to filter a campaign's judgments by: its annotators and anyone who has judged in it."""
    judged = Judgment.objects.filter(campaign=campaign, annotator__isnull=False).values("annotator_id")
    members = Membership.objects.filter(campaign=campaign, role=Role.ANNOTATOR).values("user_id")
    return get_user_model().objects.filter(Q(pk__in=judged) | Q(pk__in=members)).order_by("username")


def item_judgments(*, item: ComparisonItem) -> QuerySet[Judgment]:
    return Judgment.objects.filter(item=item).select_related("annotator", "round").order_by("id")


# --- import and export pages: what the registries offer, so the forms always match the API -----------------


def import_formats() -> list[dict]:
    """The importer names the imports API accepts (besides ``auto``), with what each reads and produces."""
    return [
        {"name": name, "help": cls.help, "produces": cls.produces, "container": cls.container}
        for name, cls in sorted(FORMATS.items(), key=lambda kv: (kv[1].produces, kv[0]))
    ]


def export_formats() -> list[dict]:
    """The export API's formats, each with its options: name, label, help and allowed values (default first)."""
    formats = []
    for name, cls in sorted(EXPORTERS.items()):
        options = [
            {"name": f.name, "label": f.name.replace("_", " ").capitalize(), "help": f.metadata.get("help", ""),
             "choices": list(f.metadata["choices"])}
            for f in fields(cls.options_class)
        ]
        formats.append({"name": name, "help": cls.help, "extension": cls.extension, "options": options})
    return formats


def export_jobs(*, campaign: Campaign, limit: int = 50) -> list:
    """The campaign's latest snapshot exports (made through the API or CLI), newest first."""
    return list(export_job_list(campaign=campaign).order_by("-created_at")[:limit])


def export_query(given: QueryDict) -> QueryDict:
    """The export API's query from the export form's: the format, its own options, and the round if any.
    Values are passed on as given, so the API's own checks name a bad one."""
    name = given.get("format") or "trl-preference"
    cls = EXPORTERS.get(name)
    allowed = set(cls.option_choices()) if cls else set()
    query = QueryDict(mutable=True)
    query["format"] = name
    for key in sorted(allowed):
        if given.get(key):
            query[key] = given[key]
    if given.get("round"):
        query["round"] = given["round"]
    return query


# --- judgments browser: agreement between an item's annotators ----------------------------------------------

AGREEMENT_LEVELS = [("agree", "Annotators agree"), ("disagree", "Annotators disagree"), ("single", "One judgment so far")]


def item_agreement(*, campaign: Campaign, round_id: int | None = None) -> dict[int, dict]:
    """item id -> {"level", "share", "votes"} by majority vote over annotators' judgments (the quality
    selectors' consensus; majority, not Dawid-Skene, so the number is one a reader can check by eye).
    ``level``: agree (2+ votes and the majority's share reaches the campaign's review threshold), disagree
    (2+ votes, below it or no majority), single (one vote)."""
    consensus = item_consensus(campaign=campaign, method="majority", round_ids=[round_id] if round_id else None)
    levels = {}
    for item_id, c in consensus.items():
        if c.votes < 2:
            level = "single"
        elif c.label is not None and c.confidence >= campaign.review_threshold:
            level = "agree"
        else:
            level = "disagree"
        levels[item_id] = {"level": level, "share": c.confidence, "votes": c.votes}
    return levels


def judgments_by_agreement(qs: QuerySet[Judgment], *, agreement: dict[int, dict], level: str) -> QuerySet[Judgment]:
    """``qs`` narrowed to judgments of items at ``level`` (items nobody has judged twice count as single)."""
    if level == "single":
        return qs.exclude(item_id__in=[i for i, a in agreement.items() if a["level"] != "single"])
    return qs.filter(item_id__in=[i for i, a in agreement.items() if a["level"] == level])
