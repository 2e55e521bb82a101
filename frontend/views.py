"""The web UI's pages. Thin: each checks the user's role in the campaign through
``labeling.selectors.campaign_get_for_roles`` (other campaigns are 404, a missing role is 403), reads through
selectors, writes through the labeling services, and renders a template. The annotator workspace and the
dashboard are JavaScript over the REST API; their page data goes in a ``json_script`` block (never inline
script, see ``security``)."""
from __future__ import annotations

from functools import wraps

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling import selectors as lsel
from labeling.errors import LoopwiseError, NotFound, PermissionDenied
from labeling.models import Role
from labeling.rendering import render_markdown
from labeling.services import campaigns as campaign_services

from . import forms
from . import selectors as fsel
from . import selectors_runs as runsel
from .security import with_csp

ADMIN = [Role.ADMIN]
READERS = [Role.ADMIN, Role.RESEARCHER]


def healthz(request):
    """Liveness and database reachability, for load balancers and compose health checks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def campaign_page(roles):
    """Login, then the campaign (404 if not visible, 403 without one of ``roles``) as the view's 2nd argument."""

    def decorate(view):
        @wraps(view)
        def wrapped(request, campaign_id: int, *args, **kwargs):
            try:
                campaign = lsel.campaign_get_for_roles(user=request.user, campaign_id=campaign_id, roles=roles)
            except NotFound:
                raise Http404("campaign not found") from None
            except PermissionDenied as exc:
                raise DjangoPermissionDenied(exc.message) from None
            request.campaign_roles = lsel.user_roles(user=request.user, campaign=campaign)
            return view(request, campaign, *args, **kwargs)

        return login_required(with_csp(wrapped))

    return decorate


def _render(request, template: str, campaign=None, **context):
    if campaign is not None:
        context.update(campaign=campaign, roles=getattr(request, "campaign_roles", frozenset()))
    return render(request, f"frontend/{template}", context)


@login_required
@with_csp
@require_GET
def home(request):
    return _render(request, "home.html", campaigns=fsel.campaigns_with_roles(user=request.user))


@require_GET
@campaign_page([Role.ANNOTATOR])
def annotate(request, campaign):
    page = {
        "campaign": {
            "id": campaign.pk,
            "name": campaign.name,
            "status": campaign.status,
            "allow_tie": campaign.allow_tie,
            "allow_both_bad": campaign.allow_both_bad,
            "strength_enabled": campaign.strength_enabled,
            "rationale": campaign.rationale,
        },
        "api": {
            "next": reverse("api:queue-next", args=[campaign.pk]),
            "progress": reverse("api:campaign-progress", args=[campaign.pk]),
            "assignment": reverse("api:assignment", args=[0]),
            "undo": reverse("api:undo", args=[0]),
        },
        "csrf": get_token(request),
    }
    guidelines = render_markdown(campaign.guidelines)
    return _render(request, "annotate.html", campaign, page=page, guidelines_html=guidelines)


def _can_create(user) -> bool:
    return user.is_staff or user.has_perm("labeling.add_campaign")


@login_required
@with_csp
@require_http_methods(["GET", "POST"])
def campaign_create(request):
    if not _can_create(request.user):
        raise DjangoPermissionDenied("creating campaigns needs site staff or the labeling.add_campaign permission")
    form = forms.CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            campaign = campaign_services.campaign_create(created_by=request.user, **data)
        except LoopwiseError as exc:
            forms.add_service_error(form, exc)
        else:
            return redirect("frontend:campaign-settings", campaign_id=campaign.pk)
    return _render(request, "campaign_form.html", form=form, creating=True)


@require_http_methods(["GET", "POST"])
@campaign_page(ADMIN)
def campaign_settings(request, campaign):
    form = forms.CampaignForm(request.POST) if request.method == "POST" else forms.CampaignForm.for_campaign(campaign)
    saved = False
    if request.method == "POST" and form.is_valid():
        try:
            campaign_services.campaign_update(campaign=campaign, **form.cleaned_data)
        except LoopwiseError as exc:
            forms.add_service_error(form, exc)
        else:
            saved = True
    return _render(request, "campaign_form.html", campaign, form=form, creating=False, saved=saved)


def _member_change(campaign, form) -> None:
    data = form.cleaned_data
    user = get_user_model().objects.filter(pk=data["user_id"]).first()
    if user is None:
        raise NotFound(f"user {data['user_id']} not found")
    if data["action"] == "remove":
        campaign_services.membership_remove(campaign=campaign, user=user, role=data["role"])
    else:
        campaign_services.membership_set_paused(campaign=campaign, user=user, paused=data["action"] == "pause")


@require_http_methods(["GET", "POST"])
@campaign_page(ADMIN)
def members(request, campaign):
    add_form = forms.MemberAddForm(request.POST if request.POST.get("action") == "add" else None)
    error = None
    if request.method == "POST":
        try:
            if request.POST.get("action") == "add":
                if add_form.is_valid():
                    user = get_user_model().objects.filter(username=add_form.cleaned_data["username"]).first()
                    if user is None:
                        raise NotFound(f"no user named {add_form.cleaned_data['username']!r}")
                    campaign_services.membership_add(campaign=campaign, user=user, role=add_form.cleaned_data["role"])
                    return redirect("frontend:members", campaign_id=campaign.pk)
            else:
                change = forms.MemberChangeForm(request.POST)
                if not change.is_valid():
                    raise NotFound("unknown member change")
                _member_change(campaign, change)
                return redirect("frontend:members", campaign_id=campaign.pk)
        except LoopwiseError as exc:
            error = exc.message
    memberships = lsel.membership_list(campaign=campaign)
    return _render(request, "members.html", campaign, memberships=memberships, add_form=add_form, error=error)


@require_GET
@campaign_page(READERS)
def dashboard(request, campaign):
    page = {
        "campaign_id": campaign.pk,
        "data_url": reverse("frontend:dashboard-data", args=[campaign.pk]),
        "ws_path": f"/ws/campaigns/{campaign.pk}/",
        "initial": fsel.dashboard_numbers(campaign=campaign),
        "runs_data_url": reverse("frontend:runs-data", args=[campaign.pk]) + "?panel=1",
    }
    training = runsel.training_panel(campaign=campaign)
    return _render(request, "dashboard.html", campaign, page=page, runs=training["runs"], loop=training["loop"],
                   reward_models=runsel.reward_model_rows(campaign=campaign)[:5])


@require_GET
@campaign_page(READERS)
def dashboard_data(request, campaign):
    return JsonResponse(fsel.dashboard_numbers(campaign=campaign))


@require_GET
@campaign_page(READERS)
def judgments(request, campaign):
    rounds = list(lsel.round_list(campaign=campaign))
    form = forms.JudgmentFilterForm(
        request.GET or None, rounds=rounds, annotators=fsel.judgment_annotators(campaign=campaign)
    )
    filters = form.cleaned_data if form.is_valid() else {}
    qs = lsel.judgment_list(
        user=request.user,
        campaign=campaign,
        round_id=filters.get("round"),
        annotator_id=filters.get("annotator"),
        kind=filters.get("kind") or None,
    ).order_by("-id")
    agreement = fsel.item_agreement(campaign=campaign, round_id=filters.get("round"))
    if filters.get("agreement"):
        qs = fsel.judgments_by_agreement(qs, agreement=agreement, level=filters["agreement"])
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    for judgment in page:
        judgment.agreement = agreement.get(judgment.item_id)
    query = request.GET.copy()
    query.pop("page", None)
    return _render(request, "judgments.html", campaign, form=form, page=page, query=query.urlencode())


@require_GET
@campaign_page(READERS)
def item_detail(request, campaign, item_id: int):
    try:
        item = lsel.item_get(user=request.user, item_id=item_id)
    except NotFound:
        raise Http404("item not found") from None
    if item.campaign_id != campaign.pk:
        raise Http404("item not found")
    links = list(item.item_responses.all())
    labels = {link.response_id: chr(ord("A") + link.position) for link in links}
    return _render(
        request, "item.html", campaign, item=item, links=links, labels=labels,
        judgments=fsel.item_judgments(item=item),
    )


@require_GET
@campaign_page(ADMIN)
def imports(request, campaign):
    page = {"url": reverse("api:imports", args=[campaign.pk]), "csrf": get_token(request), "campaign": campaign.pk}
    rounds = list(lsel.round_list(campaign=campaign))
    return _render(request, "imports.html", campaign, page=page, formats=fsel.import_formats(), rounds=rounds)


@require_GET
@campaign_page(READERS)
def export(request, campaign):
    """The export form. Submitted (``?download=1``), it redirects to the export API with only the parameters
    that API takes, the chosen format's options and a round if one was picked (a GET form would send ``round=``
    empty, which the API rightly refuses); the API answers with the file as an attachment."""
    if request.GET.get("download"):
        query = fsel.export_query(request.GET)
        return redirect(f"{reverse('api:export', args=[campaign.pk])}?{query.urlencode()}")
    return _render(
        request, "export.html", campaign,
        exporters=fsel.export_formats(),
        rounds=list(lsel.round_list(campaign=campaign)),
        jobs=fsel.export_jobs(campaign=campaign),
    )


@login_required
@require_POST
def markdown_preview(request):
    """Render guidelines (or any Markdown) the way annotators will see it: the same sanitizer, server-side."""
    form = forms.MarkdownPreviewForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": "invalid", "detail": "text is too long"}, status=400)
    return JsonResponse({"html": render_markdown(form.cleaned_data["text"])})


@require_GET
@campaign_page(READERS)
def bias(request, campaign):
    """The representativeness and bias report of the campaign's judgments (``labeling.selectors_governance``)."""
    from labeling.selectors_governance import campaign_bias

    return _render(request, "bias.html", campaign, report=campaign_bias(campaign=campaign))
