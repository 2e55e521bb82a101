"""One error shape for the whole API: ``{"error": code, "detail": message, "field": name?}``."""
from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import LoopwiseError


def _first_message(detail) -> tuple[str | None, str]:
    """Flatten DRF's nested error detail to (field path, message) for the headline; the full detail stays."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field, message = _first_message(value)
            path = key if field is None else f"{key}.{field}"
            return (None if key == "non_field_errors" else path), message
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return None, str(detail)


def exception_handler(exc, context):
    if isinstance(exc, LoopwiseError):
        return Response(exc.as_dict(), status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        response.data = {"error": getattr(data["detail"], "code", "error"), "detail": str(data["detail"])}
    else:
        field, message = _first_message(data)
        body = {"error": "invalid", "detail": f"{field}: {message}" if field else message, "errors": data}
        if field:
            body["field"] = field
        response.data = body
    return response
