"""The training pages: a campaign's runs (live progress, reward models against the human ceiling, policy
versions with their lineage), one run, and runs side by side. Admins and researchers of the campaign only, like
the dashboard; a run of another campaign is a 404. Reads go through ``selectors_runs``."""
from __future__ import annotations

from django.http import Http404, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from labeling.errors import NotFound, ValidationError

from . import selectors_runs as runsel
from .views import READERS, _render, campaign_page


def _live(campaign) -> dict:
    """What the pages' live script needs: the campaign's socket and the polling URL."""
    return {"campaign_id": campaign.pk, "ws_path": f"/ws/campaigns/{campaign.pk}/",
            "data_url": reverse("frontend:runs-data", args=[campaign.pk])}


@require_GET
@campaign_page(READERS)
def runs(request, campaign):
    page = runsel.runs_page(campaign=campaign)
    return _render(request, "runs.html", campaign, live=_live(campaign), **page)


@require_GET
@campaign_page(READERS)
def runs_data(request, campaign):
    """The live pages' data: every run's progress row (``?panel=1``: the dashboard panel's runs) and the loop."""
    if request.GET.get("panel"):
        return JsonResponse(runsel.training_panel(campaign=campaign))
    return JsonResponse(runsel.runs_live(campaign=campaign))


@require_GET
@campaign_page(READERS)
def run_detail(request, campaign, run_id: int):
    try:
        detail = runsel.run_detail(user=request.user, campaign=campaign, run_id=run_id)
    except NotFound:
        raise Http404("run not found") from None
    return _render(request, "run_detail.html", campaign, live=_live(campaign), **detail)


@require_GET
@campaign_page(READERS)
def runs_compare(request, campaign):
    try:
        ids = runsel.parse_run_ids(request.GET.getlist("run"))
        compare = runsel.runs_compare(campaign=campaign, run_ids=ids)
    except (ValidationError, NotFound) as exc:
        # The page says what was wrong with the selection (and links back), with a 4xx status.
        response = _render(request, "runs_compare.html", campaign, error=exc.message)
        response.status_code = 400 if isinstance(exc, ValidationError) else 404
        return response
    return _render(request, "runs_compare.html", campaign, **compare)
