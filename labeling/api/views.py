"""REST API views: thin. Each parses its input with a serializer, makes one service or selector call (which
checks roles and object access), and renders with an output serializer. Domain errors become HTTP errors in
``labeling.api.errors``."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors
from ..errors import NotFound, PermissionDenied
from ..models import Role
from ..services import campaigns as campaign_services
from ..services import queue
from ..services.validation import JudgmentInput
from . import serializers as s

ADMIN = [Role.ADMIN]
READERS = [Role.ADMIN, Role.RESEARCHER]
ANYONE = list(Role.values)


def _page(request: Request, view: APIView, queryset, serializer_class) -> Response:
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _campaign(request: Request, campaign_id: int, roles) -> object:
    return selectors.campaign_get_for_roles(user=request.user, campaign_id=campaign_id, roles=roles)


class CampaignListView(APIView):
    @extend_schema(responses=s.CampaignOut(many=True))
    def get(self, request: Request) -> Response:
        return _page(request, self, selectors.campaign_list(user=request.user), s.CampaignOut)

    @extend_schema(request=s.CampaignIn, responses={201: s.CampaignOut})
    def post(self, request: Request) -> Response:
        if not (request.user.is_staff or request.user.has_perm("labeling.add_campaign")):
            raise PermissionDenied("creating campaigns needs site staff or the labeling.add_campaign permission")
        data = s.CampaignIn(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = campaign_services.campaign_create(created_by=request.user, **data.validated_data)
        return Response(s.CampaignOut(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailView(APIView):
    @extend_schema(responses=s.CampaignOut)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(s.CampaignOut(_campaign(request, campaign_id, ANYONE)).data)

    @extend_schema(request=s.CampaignPatchIn, responses=s.CampaignOut)
    def patch(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = s.CampaignPatchIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        campaign = campaign_services.campaign_update(campaign=campaign, **data.validated_data)
        return Response(s.CampaignOut(campaign).data)


class CampaignStatsView(APIView):
    @extend_schema(responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(selectors.campaign_stats(campaign=_campaign(request, campaign_id, READERS)))


class ProgressView(APIView):
    """The caller's own progress beside the campaign's (the annotator page's header)."""

    @extend_schema(responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ANYONE)
        return Response(selectors.annotator_progress(user=request.user, campaign=campaign))


class MemberListView(APIView):
    @extend_schema(responses=s.MembershipOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        return Response(s.MembershipOut(selectors.membership_list(campaign=campaign), many=True).data)

    @extend_schema(request=s.MembershipIn, responses={201: s.MembershipOut})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = s.MembershipIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = campaign_services.membership_add(
            campaign=campaign, user=data.validated_data["username"], role=data.validated_data["role"],
            changed_by=request.user,
        )
        return Response(s.MembershipOut(membership).data, status=status.HTTP_201_CREATED)


def _member_user(user_id: int):
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


class MemberDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, campaign_id: int, user_id: int, role: str) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        campaign_services.membership_remove(campaign=campaign, user=_member_user(user_id), role=role,
                                            changed_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberPauseView(APIView):
    @extend_schema(request=s.PauseIn, responses=s.MembershipOut)
    def post(self, request: Request, campaign_id: int, user_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = s.PauseIn(data=request.data)
        data.is_valid(raise_exception=True)
        membership = campaign_services.membership_set_paused(
            campaign=campaign, user=_member_user(user_id), **data.validated_data
        )
        return Response(s.MembershipOut(membership).data)


class RoundListView(APIView):
    @extend_schema(responses=s.RoundOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ANYONE)
        return Response(s.RoundOut(selectors.round_list(campaign=campaign), many=True).data)

    @extend_schema(request=s.RoundIn, responses={201: s.RoundOut})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = s.RoundIn(data=request.data)
        data.is_valid(raise_exception=True)
        created = campaign_services.round_create(campaign=campaign, **data.validated_data)
        return Response(s.RoundOut(created).data, status=status.HTTP_201_CREATED)


class RoundCloseView(APIView):
    @extend_schema(request=None, responses=s.RoundOut)
    def post(self, request: Request, campaign_id: int, round_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        closed = campaign_services.round_close(round=selectors.round_get(campaign=campaign, round_id=round_id))
        return Response(s.RoundOut(closed).data)


class PromptListView(APIView):
    @extend_schema(responses=s.PromptOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        return _page(request, self, selectors.prompt_list(campaign=campaign), s.PromptOut)


class ItemListView(APIView):
    @extend_schema(parameters=[s.ItemFilterIn], responses=s.ItemOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        filters = s.ItemFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        items = selectors.item_list(
            campaign=campaign, round_id=filters.validated_data.get("round"), status=filters.validated_data.get("status")
        )
        return _page(request, self, items, s.ItemOut)


class ItemDetailView(APIView):
    @extend_schema(responses=s.ItemOut)
    def get(self, request: Request, item_id: int) -> Response:
        return Response(s.ItemOut(selectors.item_get(user=request.user, item_id=item_id)).data)


class QueueNextView(APIView):
    """Lease the next item. ``assignment`` is null when nothing is left for the caller. With ``exclude``
    (the slots already on screen) it prefetches a second item."""

    @extend_schema(request=s.QueueNextIn, responses={200: OpenApiResponse(description="{assignment: Assignment | null}")})
    def post(self, request: Request, campaign_id: int) -> Response:
        # The service checks the annotator role itself, in the query that reads the pause: one query less here.
        campaign = selectors.campaign_get(user=request.user, campaign_id=campaign_id)
        data = s.QueueNextIn(data=request.data)
        data.is_valid(raise_exception=True)
        slot = queue.assignment_next(user=request.user, campaign=campaign, exclude=set(data.validated_data["exclude"]))
        return Response({"assignment": s.assignment_payload(slot) if slot else None})


class AssignmentDetailView(APIView):
    @extend_schema(responses=s.AssignmentOut)
    def get(self, request: Request, assignment_id: int) -> Response:
        slot = selectors.assignment_get_own(user=request.user, assignment_id=assignment_id)
        return Response(s.assignment_payload(slot))


class SubmitView(APIView):
    """Record a judgment. 201 when stored, 200 when a retry with the same client_id returns the stored one."""

    @extend_schema(request=s.SubmitIn, responses={201: s.JudgmentOut, 200: s.JudgmentOut})
    def post(self, request: Request, assignment_id: int) -> Response:
        data = s.SubmitIn(data=request.data)
        data.is_valid(raise_exception=True)
        result = queue.judgment_record(
            user=request.user, assignment_id=assignment_id, data=JudgmentInput(**data.validated_data)
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(s.JudgmentOut(result.judgment).data, status=code)


class SkipView(APIView):
    @extend_schema(request=s.SkipIn, responses={204: None})
    def post(self, request: Request, assignment_id: int) -> Response:
        data = s.SkipIn(data=request.data)
        data.is_valid(raise_exception=True)
        queue.assignment_skip(user=request.user, assignment_id=assignment_id, reason=data.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReleaseView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, assignment_id: int) -> Response:
        queue.assignment_release(user=request.user, assignment_id=assignment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UndoView(APIView):
    """Take back one's own judgment while its lease runs; returns the slot to judge again."""

    @extend_schema(request=None, responses=s.AssignmentOut)
    def post(self, request: Request, judgment_id: int) -> Response:
        slot = queue.judgment_undo(user=request.user, judgment_id=judgment_id)
        return Response(s.assignment_payload(selectors.assignment_get_own(user=request.user, assignment_id=slot.pk)))


class JudgmentListView(APIView):
    @extend_schema(parameters=[s.JudgmentFilterIn], responses=s.JudgmentOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ANYONE)
        filters = s.JudgmentFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        judgments = selectors.judgment_list(
            user=request.user,
            campaign=campaign,
            round_id=f.get("round"),
            annotator_id=f.get("annotator"),
            kind=f.get("kind"),
            source=f.get("source"),
        )
        return _page(request, self, judgments, s.JudgmentOut)
