"""Reads. Every query that leaves this app goes through here, scoped to what the user may see, with the
joins it needs (``select_related`` / ``prefetch_related``) decided here rather than in views.

Visibility rules: site staff see everything. Otherwise a user sees a campaign they hold any role in; admins
and researchers see all its data; annotators see items only through their own slots and only their own
judgments. A campaign or object a user may not see is reported as not found (404), never as forbidden, so
ids of other campaigns leak nothing.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from .errors import NotFound, PermissionDenied
from .models import (
    Assignment,
    Campaign,
    ComparisonItem,
    ItemResponse,
    Judgment,
    Membership,
    Prompt,
    Role,
    Round,
)

READ_ROLES = frozenset({Role.ADMIN, Role.RESEARCHER})


def user_roles(*, user: AbstractBaseUser, campaign: Campaign) -> frozenset[str]:
    """The roles ``user`` holds in ``campaign``; staff hold every role."""
    if user.is_staff:
        return frozenset(Role.values)
    cache = getattr(user, "_loopwise_roles", None)
    if cache is None:
        cache = {}
        user._loopwise_roles = cache  # per-request cache: one query per campaign, not per check
    if campaign.pk not in cache:
        cache[campaign.pk] = frozenset(
            Membership.objects.filter(campaign=campaign, user=user).values_list("role", flat=True)
        )
    return cache[campaign.pk]


def require_role(*, user: AbstractBaseUser, campaign: Campaign, roles: Iterable[str]) -> None:
    """Raise PermissionDenied unless ``user`` holds one of ``roles`` in ``campaign`` (which they can see)."""
    if not user_roles(user=user, campaign=campaign) & frozenset(roles):
        names = " or ".join(sorted(roles))
        raise PermissionDenied(f"this needs the {names} role in campaign {campaign.pk}")


def campaign_list(*, user: AbstractBaseUser) -> QuerySet[Campaign]:
    qs = Campaign.objects.all()
    if not user.is_staff:
        qs = qs.filter(pk__in=Membership.objects.filter(user=user).values("campaign_id"))
    return qs.order_by("-created_at")


def campaign_get(*, user: AbstractBaseUser, campaign_id: int) -> Campaign:
    """The campaign if ``user`` may see it, else NotFound."""
    campaign = campaign_list(user=user).filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign


def campaign_get_for_roles(*, user: AbstractBaseUser, campaign_id: int, roles: Iterable[str]) -> Campaign:
    campaign = campaign_get(user=user, campaign_id=campaign_id)
    require_role(user=user, campaign=campaign, roles=roles)
    return campaign


def campaign_stats(*, campaign: Campaign) -> dict:
    """Progress counts: items by status, slots by state, judgments. A handful of aggregate queries."""
    slots = dict(
        Assignment.objects.filter(campaign=campaign).values_list("state").annotate(n=Count("id")).values_list("state", "n")
    )
    items = dict(
        ComparisonItem.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return {
        "items_total": sum(items.values()),
        "items_complete": items.get(ComparisonItem.Status.COMPLETE, 0),
        "slots_available": slots.get(Assignment.State.AVAILABLE, 0),
        "slots_leased": slots.get(Assignment.State.LEASED, 0),
        "slots_done": slots.get(Assignment.State.DONE, 0),
        "judgments": Judgment.objects.filter(campaign=campaign).count(),
        "prompts": Prompt.objects.filter(campaign=campaign).count(),
    }


def membership_list(*, campaign: Campaign) -> QuerySet[Membership]:
    return Membership.objects.filter(campaign=campaign).select_related("user").order_by("user__username", "role")


def round_list(*, campaign: Campaign) -> QuerySet[Round]:
    return Round.objects.filter(campaign=campaign).annotate(
        items_count=Count("items", distinct=True), judgments_count=Count("judgments", distinct=True)
    )


def round_get(*, campaign: Campaign, round_id: int) -> Round:
    found = Round.objects.filter(campaign=campaign, pk=round_id).first()
    if found is None:
        raise NotFound(f"round {round_id} not found in campaign {campaign.pk}")
    return found


def prompt_list(*, campaign: Campaign) -> QuerySet[Prompt]:
    return Prompt.objects.filter(campaign=campaign)


def _with_responses(qs: QuerySet[ComparisonItem]) -> QuerySet[ComparisonItem]:
    return qs.select_related("prompt", "round").prefetch_related(
        Prefetch("item_responses", queryset=ItemResponse.objects.select_related("response").order_by("position"))
    )


def item_list(*, campaign: Campaign, round_id: int | None = None, status: str | None = None) -> QuerySet[ComparisonItem]:
    qs = ComparisonItem.objects.filter(campaign=campaign)
    if round_id is not None:
        qs = qs.filter(round_id=round_id)
    if status:
        qs = qs.filter(status=status)
    return _with_responses(qs).annotate(judgments_count=Count("judgments"))


def item_get(*, user: AbstractBaseUser, item_id: int) -> ComparisonItem:
    """An item with its responses, if ``user`` may see it: admins and researchers of its campaign, or an
    annotator who holds or held one of its slots. Anything else is NotFound."""
    item = _with_responses(ComparisonItem.objects.filter(pk=item_id)).select_related("campaign").first()
    if item is None:
        raise NotFound(f"item {item_id} not found")
    roles = user_roles(user=user, campaign=item.campaign)
    if roles & READ_ROLES:
        return item
    if Role.ANNOTATOR in roles and Assignment.objects.filter(item=item, annotator=user).exists():
        return item
    raise NotFound(f"item {item_id} not found")


def assignment_get_own(*, user: AbstractBaseUser, assignment_id: int) -> Assignment:
    """A slot the user holds (or held), with what the annotator page needs. Others' slots are NotFound."""
    assignment = (
        Assignment.objects.select_related("item__prompt", "campaign")
        .filter(pk=assignment_id, annotator=user)
        .first()
    )
    if assignment is None:
        raise NotFound(f"assignment {assignment_id} not found")
    return assignment


def judgment_list(
    *,
    user: AbstractBaseUser,
    campaign: Campaign,
    round_id: int | None = None,
    annotator_id: int | None = None,
    kind: str | None = None,
    source: str | None = None,
) -> QuerySet[Judgment]:
    """Judgments of a campaign: all of them for admins and researchers, only their own for annotators."""
    roles = user_roles(user=user, campaign=campaign)
    if not roles:
        raise NotFound(f"campaign {campaign.pk} not found")
    qs = Judgment.objects.filter(campaign=campaign)
    if not roles & READ_ROLES:
        qs = qs.filter(annotator=user)
    if round_id is not None:
        qs = qs.filter(round_id=round_id)
    if annotator_id is not None:
        qs = qs.filter(annotator_id=annotator_id)
    if kind:
        qs = qs.filter(kind=kind)
    if source:
        qs = qs.filter(source=source)
    return qs.select_related("annotator", "round").order_by("id")


def judgments_for_export(*, campaign: Campaign, round_ids: list[int] | None = None) -> QuerySet[Judgment]:
    """Judgments with everything an exporter writes, in item then id order (a snapshot's order).
    ``Exporter.stream`` reads the queryset as plain rows (its filters and order, the items and responses as
    two more streams beside it); iterated as model instances, the prompt and the item's responses come
    joined and prefetched."""
    qs = Judgment.objects.filter(campaign=campaign)
    if round_ids:
        qs = qs.filter(round_id__in=round_ids)
    return qs.select_related("item__prompt", "winner", "annotator", "round").prefetch_related(
        Prefetch("item__item_responses", queryset=ItemResponse.objects.select_related("response").order_by("position"))
    ).order_by("item_id", "id")


def annotator_progress(*, user: AbstractBaseUser, campaign: Campaign) -> dict:
    """The annotator's own counts (done today, done in all) beside the campaign's."""
    start_of_day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    mine = Judgment.objects.filter(campaign=campaign, annotator=user).aggregate(
        total=Count("id"), today=Count("id", filter=Q(created_at__gte=start_of_day))
    )
    stats = campaign_stats(campaign=campaign)
    return {"mine_total": mine["total"], "mine_today": mine["today"], **stats}
