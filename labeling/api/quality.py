"""Quality-control endpoints: agreement, annotator reliability, gold items and gold accuracy, flags,
consensus, the review (adjudication) queue, quality settings and the model leaderboard.

Reads are for admins and researchers; writes (settings, gold, flags, adjudication) for admins. Thin views:
an input serializer, one selector or service call, an output serializer or the selector's plain dict.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors
from .. import selectors_quality as sq
from ..models import Campaign, ComparisonItem, QualityFlag, Role
from ..services import quality as quality_services
from ..services import quality_checks
from ..services.validation import JudgmentInput
from .serializers import JudgmentOut, SubmitIn

ADMIN = [Role.ADMIN]
READERS = [Role.ADMIN, Role.RESEARCHER]


def _campaign(request: Request, campaign_id: int, roles) -> Campaign:
    return selectors.campaign_get_for_roles(user=request.user, campaign_id=campaign_id, roles=roles)


def _query(serializer_class, request: Request) -> dict:
    data = serializer_class(data=request.query_params)
    data.is_valid(raise_exception=True)
    return data.validated_data


# --- serializers --------------------------------------------------------------------------------------------
class AgreementQueryIn(serializers.Serializer):
    round = serializers.IntegerField(required=False, min_value=1)
    n_boot = serializers.IntegerField(required=False, default=200, min_value=0, max_value=2000)


class ConsensusQueryIn(serializers.Serializer):
    method = serializers.ChoiceField(choices=sq.METHODS, required=False, default="dawid_skene")
    round = serializers.IntegerField(required=False, min_value=1)


class LeaderboardQueryIn(AgreementQueryIn):
    method = serializers.ChoiceField(choices=["bradley_terry", "elo"], required=False, default="bradley_terry")
    basis = serializers.ChoiceField(choices=["judgments", "consensus"], required=False, default="judgments")


class FlagQueryIn(serializers.Serializer):
    annotator = serializers.IntegerField(required=False)
    open = serializers.BooleanField(required=False, default=False)
    kind = serializers.ChoiceField(choices=QualityFlag.Kind.choices, required=False)


class QualitySettingsIO(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = sorted(quality_services.QUALITY_FIELDS | {"overlap"})
        read_only_fields = ["overlap"]
        extra_kwargs = {"gold_min_accuracy": {"allow_null": True}}


class GoldIn(SubmitIn):
    item = serializers.IntegerField()


class GoldFromLabelsIn(serializers.Serializer):
    source_name = serializers.CharField(max_length=200)


class GoldItemOut(serializers.ModelSerializer):
    gold_judged = serializers.IntegerField(read_only=True, required=False)
    gold_correct = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = ComparisonItem
        fields = ["id", "kind", "round_id", "gold_answer", "gold_judged", "gold_correct"]


class FlagOut(serializers.ModelSerializer):
    username = serializers.CharField(source="annotator.username")

    class Meta:
        model = QualityFlag
        fields = ["id", "annotator_id", "username", "judgment_id", "kind", "message", "detail", "created_at",
                  "resolved_at", "resolved_by_id"]


# --- views --------------------------------------------------------------------------------------------------
class AgreementView(APIView):
    @extend_schema(parameters=[AgreementQueryIn], responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        q = _query(AgreementQueryIn, request)
        return Response(sq.agreement_report(campaign=campaign, round_id=q.get("round"), n_boot=q["n_boot"]))


class AnnotatorQualityView(APIView):
    @extend_schema(responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(sq.annotator_report(campaign=_campaign(request, campaign_id, READERS)))


class GoldAccuracyView(APIView):
    @extend_schema(responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(sq.gold_accuracy_over_time(campaign=_campaign(request, campaign_id, READERS)))


class QualitySettingsView(APIView):
    @extend_schema(responses=QualitySettingsIO)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(QualitySettingsIO(_campaign(request, campaign_id, READERS)).data)

    @extend_schema(request=QualitySettingsIO, responses=QualitySettingsIO)
    def patch(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = QualitySettingsIO(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        campaign = quality_services.campaign_quality_update(campaign=campaign, **data.validated_data)
        return Response(QualitySettingsIO(campaign).data)


class GoldListView(APIView):
    @extend_schema(responses=GoldItemOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        return Response(GoldItemOut(sq.gold_list(campaign=campaign), many=True).data)

    @extend_schema(request=GoldIn, responses={201: GoldItemOut})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = GoldIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        item = sq.campaign_item_get(campaign=campaign, item_id=fields.pop("item"))
        item = quality_services.gold_mark(campaign=campaign, item=item, answer=JudgmentInput(**fields))
        return Response(GoldItemOut(item).data, status=status.HTTP_201_CREATED)


class GoldDetailView(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, campaign_id: int, item_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        item = sq.campaign_item_get(campaign=campaign, item_id=item_id)
        quality_services.gold_unmark(campaign=campaign, item=item)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GoldFromLabelsView(APIView):
    @extend_schema(request=GoldFromLabelsIn, responses=dict)
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = GoldFromLabelsIn(data=request.data)
        data.is_valid(raise_exception=True)
        marked = quality_services.gold_from_labels(campaign=campaign, source_name=data.validated_data["source_name"])
        return Response({"gold_items": marked})


class FlagListView(APIView):
    @extend_schema(parameters=[FlagQueryIn], responses=FlagOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        q = _query(FlagQueryIn, request)
        flags = sq.flag_list(campaign=campaign, annotator_id=q.get("annotator"), open_only=q["open"], kind=q.get("kind"))
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(flags, request, view=self)
        return paginator.get_paginated_response(FlagOut(page, many=True).data)


class FlagResolveView(APIView):
    @extend_schema(request=None, responses=FlagOut)
    def post(self, request: Request, campaign_id: int, flag_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        flag = quality_checks.flag_resolve(campaign=campaign, flag_id=flag_id, user=request.user)
        return Response(FlagOut(flag).data)


class ConsensusView(APIView):
    """Per-item consensus label and confidence (what exports and training weight by)."""

    @extend_schema(parameters=[ConsensusQueryIn], responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        q = _query(ConsensusQueryIn, request)
        rounds = [q["round"]] if q.get("round") else None
        consensus = sq.item_consensus(campaign=campaign, method=q["method"], round_ids=rounds)
        return Response({
            "method": q["method"],
            "items": [
                {"item": item_id, "label": c.label, "confidence": round(c.confidence, 4), "votes": c.votes}
                for item_id, c in sorted(consensus.items())
            ],
        })


class ReviewQueueView(APIView):
    @extend_schema(parameters=[ConsensusQueryIn], responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        q = _query(ConsensusQueryIn, request)
        return Response({"threshold": campaign.review_threshold, "items": sq.review_queue(campaign=campaign, method=q["method"])})


class AdjudicateView(APIView):
    """Record the adjudicator's decision on an item (a judgment with source ``adjudicated``)."""

    @extend_schema(request=SubmitIn, responses={201: JudgmentOut})
    def post(self, request: Request, campaign_id: int, item_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = SubmitIn(data=request.data)
        data.is_valid(raise_exception=True)
        item = sq.campaign_item_get(campaign=campaign, item_id=item_id)
        judgment = quality_checks.judgment_adjudicate(
            user=request.user, campaign=campaign, item=item, data=JudgmentInput(**data.validated_data)
        )
        return Response(JudgmentOut(judgment).data, status=status.HTTP_201_CREATED)


class LeaderboardView(APIView):
    @extend_schema(parameters=[LeaderboardQueryIn], responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        q = _query(LeaderboardQueryIn, request)
        return Response(
            sq.leaderboard(
                campaign=campaign, method=q["method"], basis=q["basis"], n_boot=q["n_boot"], round_id=q.get("round")
            )
        )
