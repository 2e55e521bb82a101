"""Import and export endpoints.

``POST campaigns/<id>/imports/`` (campaign admins): a multipart upload (``file``, ``format``, ``dry_run``,
``label_source``, ``skip_unsplittable``, ``round``), written straight to a temporary file, never held in
memory, and refused with 413 as soon as it passes LOOPWISE_MAX_IMPORT_BYTES. 201 with the import report,
200 for a dry run, 400 with ``errors`` (line, field, message) for a bad file.

``GET campaigns/<id>/export/?format=trl-preference&style=...&round=<id>`` (admins and researchers): the
judgments as a streamed attachment. Here ``format`` is the export format, so DRF's own use of ``?format=``
(choosing a renderer) is switched off for this view."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils.text import slugify
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors
from ..errors import TooLarge, ValidationError
from ..exporters import EXPORTERS, exporter_get
from ..importers import FORMATS, import_file
from ..services.audit import audit_record
from .views import ADMIN, READERS, _campaign

# Room for the multipart envelope and the small form fields around the file.
MULTIPART_SLACK = 1 << 20


def _too_large(size: int | str) -> TooLarge:
    limit = settings.LOOPWISE_MAX_IMPORT_BYTES
    return TooLarge(f"the upload is {size} bytes; the limit is {limit} (LOOPWISE_MAX_IMPORT_BYTES)", field="file")


class SizeLimitedTemporaryUpload(TemporaryFileUploadHandler):
    """Every uploaded file goes to a temporary file (Django would keep small ones in memory), and the upload
    stops at the import size limit: up front from Content-Length, else when the bytes pass it."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > settings.LOOPWISE_MAX_IMPORT_BYTES + MULTIPART_SLACK:
            raise _too_large(content_length)
        return None

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.LOOPWISE_MAX_IMPORT_BYTES:
            self.file.close()  # deletes the partial temporary file
            raise _too_large(f"more than {settings.LOOPWISE_MAX_IMPORT_BYTES}")
        return super().receive_data_chunk(raw_data, start)


class ImportIn(serializers.Serializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=["auto", *sorted(FORMATS)], default="auto")
    dry_run = serializers.BooleanField(default=False)
    label_source = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    skip_unsplittable = serializers.BooleanField(default=False)
    round = serializers.IntegerField(required=False, min_value=1)


class ImportView(APIView):
    parser_classes = [MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        # Before anything (authentication's CSRF check included) can read the body with the default handlers.
        request.upload_handlers = [SizeLimitedTemporaryUpload(request)]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": ImportIn},
        responses={201: dict, 200: OpenApiResponse(description="dry run: what would be imported"),
                   400: OpenApiResponse(description="{errors: [{line, field, message}]}"), 413: None},
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _campaign(request, campaign_id, ADMIN)
        data = ImportIn(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        round = selectors.round_get(campaign=campaign, round_id=given["round"]) if "round" in given else None
        report = import_file(
            campaign=campaign,
            path=Path(given["file"].temporary_file_path()),
            fmt=given["format"],
            dry_run=given["dry_run"],
            label_source=given["label_source"] or None,
            skip_unsplittable=given["skip_unsplittable"],
            round=round,
            imported_by=request.user,
        )
        return Response(report.as_dict(), status=status.HTTP_200_OK if given["dry_run"] else status.HTTP_201_CREATED)


def _served(request: Request, chunks: Iterator[bytes]) -> Iterator[bytes] | AsyncIterator[bytes]:
    """Under ASGI (Daphne, in production) Django would read a synchronous iterator into one list before
    sending it, whole export in memory; so there it gets an asynchronous one that pulls chunk by chunk."""
    return _pulled(chunks) if isinstance(request._request, ASGIRequest) else chunks


async def _pulled(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    # thread_sensitive: every chunk is read in the request's one sync thread, where its connection and
    # server-side cursor live.
    step = sync_to_async(next, thread_sensitive=True)
    try:
        while (chunk := await step(chunks, None)) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()  # a client gone mid-way: close the cursor


class _FormatIsNotARenderer(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _export_parameters() -> list[OpenApiParameter]:
    params = [
        OpenApiParameter("format", str, enum=sorted(EXPORTERS), default="trl-preference"),
        OpenApiParameter("round", int, description="only this round's judgments"),
    ]
    for exporter in EXPORTERS.values():
        for name, choices in exporter.option_choices().items():
            params.append(OpenApiParameter(name, str, enum=list(choices), default=choices[0],
                                           description=f"{exporter.name} option"))
    return params


class ExportView(APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _FormatIsNotARenderer

    @extend_schema(parameters=_export_parameters(), responses={200: OpenApiResponse(description="JSON lines")})
    def get(self, request: Request, campaign_id: int) -> StreamingHttpResponse:
        campaign = _campaign(request, campaign_id, READERS)
        options = request.query_params.dict()
        name = options.pop("format", "trl-preference")
        round = None
        if "round" in options:
            value = options.pop("round")
            if not value.isdigit():
                raise ValidationError(f"round must be a round id (got {value!r})", field="round")
            round = selectors.round_get(campaign=campaign, round_id=int(value))
        exporter = exporter_get(name, options)
        audit_record(action="data.exported", actor=request.user, campaign_id=campaign.pk, object_type="download",
                     object_id=name, details={"format": name, "options": options, "round": round.pk if round else None})
        judgments = selectors.judgments_for_export(campaign=campaign, round_ids=[round.pk] if round else None)
        response = StreamingHttpResponse(_served(request, exporter.stream(judgments)), content_type=exporter.content_type)
        stem = "-".join(filter(None, [slugify(campaign.name) or "campaign", str(campaign.pk),
                                      f"round{round.number}" if round else "", exporter.name]))
        response["Content-Disposition"] = f'attachment; filename="{stem}.{exporter.extension}"'
        return response
