"""Shared behaviour of Loopwise commands: domain errors become a message on stderr and exit code 2."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ...errors import LoopwiseError
from ...models import Campaign


class LoopwiseCommand(BaseCommand):
    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except LoopwiseError as exc:
            where = f" ({exc.field})" if exc.field else ""
            raise CommandError(f"{exc.message}{where}", returncode=2) from exc


def campaign_by_ref(ref: str) -> Campaign:
    """A campaign by id or by exact name."""
    campaign = Campaign.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
    campaign = campaign or Campaign.objects.filter(name=ref).first()
    if campaign is None:
        raise CommandError(f"no campaign with id or name {ref!r}", returncode=2)
    return campaign
