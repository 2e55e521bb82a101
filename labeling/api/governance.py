"""Data-governance endpoints: snapshots (create, list, show, download in a format), export jobs (queue, list,
show, download the file), the bias report, the campaign's PII policy, deletions and the audit log.

Who may do what: admins and researchers of a campaign create and read snapshots and exports and read the
bias report; only its admins set the PII policy and delete data; the audit log shows site staff everything
and a campaign admin the events of the campaigns they administer."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors_governance as gov
from ..errors import Conflict, NotFound, ValidationError
from ..exporters import RECORD_EXPORTERS, record_exporter_get
from ..models import AuditEvent, Membership, Prompt, Role
from ..pii import ACTIONS, KINDS
from ..pii.campaign import campaign_policy, pii_policy_set
from ..services import deletion, snapshots
from ..services.audit import audit_record
from .transfer import _FormatIsNotARenderer, _served
from .views import ADMIN, READERS, _campaign, _page


class SnapshotIn(serializers.Serializer):
    round_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, allow_null=True)
    filters = serializers.DictField(required=False, default=dict)
    aggregation = serializers.ChoiceField(choices=list(snapshots.AGGREGATIONS), default="none")
    split_seed = serializers.IntegerField(default=0)
    split_ratios = serializers.ListField(child=serializers.FloatField(min_value=0), min_length=3, max_length=3,
                                         default=[0.8, 0.1, 0.1])
    pii_policy = serializers.DictField(required=False, allow_null=True, default=None)


class SnapshotOut(serializers.Serializer):
    id = serializers.IntegerField()
    content_hash = serializers.CharField()
    records_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    data_deleted_at = serializers.DateTimeField()
    deletions = serializers.JSONField()
    manifest = serializers.JSONField()


class ExportIn(serializers.Serializer):
    format = serializers.ChoiceField(choices=sorted(RECORD_EXPORTERS))
    options = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    snapshot = serializers.IntegerField(required=False, min_value=1)
    split = serializers.ChoiceField(choices=["", *snapshots.SPLITS], required=False, default="")


class ExportOut(serializers.Serializer):
    id = serializers.IntegerField()
    # Null while pending: a job queued without a snapshot gets one from the worker before its file is written.
    snapshot = serializers.IntegerField(source="snapshot_id", allow_null=True)
    snapshot_hash = serializers.CharField(source="snapshot.content_hash", allow_null=True)
    format = serializers.CharField()
    options = serializers.JSONField()
    split = serializers.CharField()
    status = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    file_name = serializers.CharField()
    sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()
    records = serializers.IntegerField()
    pii_report = serializers.JSONField()
    error = serializers.CharField()


class PolicyIn(serializers.Serializer):
    default = serializers.ChoiceField(choices=list(ACTIONS), default="allow")
    kinds = serializers.DictField(child=serializers.ChoiceField(choices=list(ACTIONS)), required=False, default=dict)
    names = serializers.BooleanField(default=True)


class DeletionIn(serializers.Serializer):
    prompt = serializers.IntegerField(required=False, min_value=1)
    annotator = serializers.IntegerField(required=False, min_value=1)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    def validate(self, data):
        if ("prompt" in data) == ("annotator" in data):
            raise serializers.ValidationError("give exactly one of prompt or annotator")
        return data


class AuditFilterIn(serializers.Serializer):
    campaign = serializers.IntegerField(required=False, min_value=1)
    action = serializers.ChoiceField(choices=AuditEvent.Action.values, required=False)
    actor = serializers.IntegerField(required=False, min_value=1)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class AuditOut(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "action", "actor_id", "actor_name", "campaign_id", "object_type", "object_id", "counts",
                  "details", "created_at"]


class SnapshotListView(APIView):
    @extend_schema(responses=SnapshotOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        return _page(request, self, gov.snapshot_list(campaign=_campaign(request, campaign_id, READERS)), SnapshotOut)

    @extend_schema(request=SnapshotIn, responses={201: SnapshotOut})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        data = SnapshotIn(data=request.data)
        data.is_valid(raise_exception=True)
        created = snapshots.snapshot_create(campaign=campaign, created_by=request.user, **data.validated_data)
        return Response(SnapshotOut(created).data, status=status.HTTP_201_CREATED)


class SnapshotDetailView(APIView):
    @extend_schema(responses=SnapshotOut)
    def get(self, request: Request, campaign_id: int, snapshot_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        return Response(SnapshotOut(gov.snapshot_get(campaign=campaign, snapshot_id=snapshot_id)).data)


class SnapshotDownloadView(APIView):
    """The snapshot streamed in a format (``?format=``, ``?split=``, format options as further parameters).
    Binary formats (Parquet, datasets) go through an export job."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = _FormatIsNotARenderer

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=sorted(RECORD_EXPORTERS), default="canonical"),
                               OpenApiParameter("split", str, enum=list(snapshots.SPLITS))],
                   responses={200: OpenApiResponse(description="the file")})
    def get(self, request: Request, campaign_id: int, snapshot_id: int) -> StreamingHttpResponse:
        campaign = _campaign(request, campaign_id, READERS)
        snapshot = gov.snapshot_get(campaign=campaign, snapshot_id=snapshot_id)
        options = request.query_params.dict()
        name, split = options.pop("format", "canonical"), options.pop("split", "")
        if split and split not in snapshots.SPLITS:
            raise ValidationError(f"split must be one of {list(snapshots.SPLITS)} (got {split!r})", field="split")
        exporter = record_exporter_get(name, options)
        if exporter.container == "binary":
            raise ValidationError(f"{name} is a binary format: create an export job (POST exports/)", field="format")
        audit_record(action="data.exported", actor=request.user, campaign_id=campaign.pk, object_type="snapshot",
                     object_id=snapshot.pk, details={"format": name, "options": options, "split": split})
        chunks = exporter.stream(gov.snapshot_records(snapshot=snapshot, split=split or None))
        response = StreamingHttpResponse(_served(request, chunks), content_type=exporter.content_type)
        stem = f"snapshot-{snapshot.pk}-{snapshot.content_hash[:12]}-{name}{'-' + split if split else ''}"
        response["Content-Disposition"] = f'attachment; filename="{stem}.{exporter.extension}"'
        return response


class ExportListView(APIView):
    @extend_schema(responses=ExportOut(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        return _page(request, self, gov.export_job_list(campaign=_campaign(request, campaign_id, READERS)), ExportOut)

    @extend_schema(request=ExportIn, responses={202: ExportOut})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        data = ExportIn(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        snapshot = gov.snapshot_get(campaign=campaign, snapshot_id=given["snapshot"]) if "snapshot" in given else None
        job = snapshots.export_job_create(campaign=campaign, created_by=request.user, format=given["format"],
                                          options=given["options"], snapshot=snapshot, split=given["split"])
        return Response(ExportOut(job).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailView(APIView):
    @extend_schema(responses=ExportOut)
    def get(self, request: Request, campaign_id: int, job_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        return Response(ExportOut(gov.export_job_get(campaign=campaign, job_id=job_id)).data)


class ExportDownloadView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="the file"), 409: None})
    def get(self, request: Request, campaign_id: int, job_id: int) -> FileResponse:
        job = gov.export_job_get(campaign=_campaign(request, campaign_id, READERS), job_id=job_id)
        path = snapshots.export_path(job.pk)
        if job.status != job.Status.DONE:
            raise Conflict(f"export {job.pk} is {job.status}, not done", field="status")
        if not path.exists():
            raise NotFound(f"the file of export {job.pk} is gone from storage")
        response = FileResponse(path.open("rb"), as_attachment=True, filename=job.file_name,
                                content_type=RECORD_EXPORTERS[job.format].content_type)
        response["X-Content-SHA256"] = job.sha256
        return response


class BiasView(APIView):
    """The bias report of a campaign's judgments as they are now (a snapshot's is in its manifest)."""

    @extend_schema(responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, READERS)
        return Response(gov.campaign_bias(campaign=campaign))


class PiiPolicyView(APIView):
    @extend_schema(responses=dict)
    def get(self, request: Request, campaign_id: int) -> Response:
        policy = campaign_policy(campaign=_campaign(request, campaign_id, ADMIN))
        return Response({**policy.manifest(), "kinds_known": list(KINDS), "actions": list(ACTIONS)})

    @extend_schema(request=PolicyIn, responses=dict)
    def put(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = PolicyIn(data=request.data)
        data.is_valid(raise_exception=True)
        policy = pii_policy_set(campaign=campaign, policy=data.validated_data, changed_by=request.user)
        return Response(policy.manifest())


class DeletionView(APIView):
    @extend_schema(request=DeletionIn, responses={200: dict})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = DeletionIn(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        if "prompt" in given:
            prompt = Prompt.objects.filter(campaign=campaign, pk=given["prompt"]).first()
            if prompt is None:
                raise NotFound(f"prompt {given['prompt']} not found in campaign {campaign.pk}")
            event = deletion.prompt_delete(prompt=prompt, deleted_by=request.user, reason=given["reason"])
        else:
            user = get_user_model().objects.filter(pk=given["annotator"]).first()
            if user is None:
                raise NotFound(f"user {given['annotator']} not found")
            event = deletion.annotator_data_delete(campaign=campaign, annotator=user, deleted_by=request.user,
                                                   reason=given["reason"])
        return Response(AuditOut(event).data)


class AuditListView(APIView):
    @extend_schema(parameters=[AuditFilterIn], responses=AuditOut(many=True))
    def get(self, request: Request) -> Response:
        data = AuditFilterIn(data=request.query_params)
        data.is_valid(raise_exception=True)
        given = dict(data.validated_data)
        campaign = given.pop("campaign", None)
        if campaign is not None:
            _campaign(request, campaign, ADMIN)
            scope = [campaign]
        elif request.user.is_staff:
            scope = None
        else:
            scope = Membership.objects.filter(user=request.user, role=Role.ADMIN).values_list("campaign_id", flat=True)
        events = gov.audit_list(user=request.user, campaign_ids=scope, action=given.get("action"),
                                actor_id=given.get("actor"), since=given.get("since"), until=given.get("until"))
        return _page(request, self, events, AuditOut)
