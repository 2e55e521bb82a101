"""The audit log: who imported, exported, snapshotted, deleted, changed roles or policies; when; how much.
Written inside the caller's transaction, so an action that rolls back leaves no event and one that commits
always has one."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from ..errors import ValidationError
from ..models import AuditEvent

ACTIONS = frozenset(AuditEvent.Action.values)


@transaction.atomic
def audit_record(*, action: str, actor: AbstractBaseUser | None, campaign_id: int | None = None,
                 object_type: str = "", object_id: Any = "", counts: dict | None = None,
                 details: dict | None = None) -> AuditEvent:
    if action not in ACTIONS:
        raise ValidationError(f"unknown audit action {action!r}", field="action")
    real = actor if actor is not None and getattr(actor, "pk", None) else None
    return AuditEvent.objects.create(
        action=action, actor=real, actor_name=real.get_username() if real else "system",
        campaign_id=campaign_id, object_type=object_type, object_id=str(object_id)[:64],
        counts=counts or {}, details=details or {},
    )
