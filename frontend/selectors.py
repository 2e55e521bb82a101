"""Reads for the web UI that the labeling selectors don't offer: the home page's campaigns with roles, the
dashboard's numbers, the researcher pages' lists. Read-only, a few aggregate queries each, never a query per
row. Callers have already checked roles with ``labeling.selectors.campaign_get_for_roles``."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Avg, Count, Max, Q, QuerySet
from django.db.models.functions import Trunc
from django.utils import timezone

from labeling.models import Assignment, Campaign, ComparisonItem, Judgment, Membership, Role
from labeling.selectors import campaign_list, campaign_stats

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
