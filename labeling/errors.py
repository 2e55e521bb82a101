"""Domain errors raised by services and mapped to HTTP statuses by the API layer (and exit codes by commands).
Each carries a message that says what is wrong and, where it can, which field."""
from __future__ import annotations


class LoopwiseError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or {}

    def as_dict(self) -> dict:
        body: dict = {"error": self.code, "detail": self.message}
        if self.field:
            body["field"] = self.field
        if self.details:
            body.update(self.details)
        return body


class ValidationError(LoopwiseError):
    status_code = 400
    code = "invalid"


class NotFound(LoopwiseError):
    status_code = 404
    code = "not_found"


class PermissionDenied(LoopwiseError):
    status_code = 403
    code = "forbidden"


class Conflict(LoopwiseError):
    status_code = 409
    code = "conflict"


class TooLarge(LoopwiseError):
    status_code = 413
    code = "too_large"
