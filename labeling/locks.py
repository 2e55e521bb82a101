"""Every row lock the labeling app takes, named, in one place. A function that needs a lock calls one of these
inside its transaction and says so in its docstring."""
from __future__ import annotations

from django.db.models import QuerySet

from .models import Assignment, ComparisonItem


def assignment_slots_open_for_update(queryset: QuerySet[Assignment]) -> QuerySet[Assignment]:
    """Lock open slots for the queue, skipping any another transaction holds: concurrent ``next`` calls each
    take a different slot instead of waiting in line. (SQLite ignores row locks; there the IMMEDIATE
    transaction mode serialises writers, see settings.)"""
    return queryset.select_for_update(skip_locked=True, of=("self",))


def assignment_lock(assignment_id: int) -> QuerySet[Assignment]:
    """Lock one slot and wait for it: submit, skip and release must see the slot as it is, not a stale copy,
    and a retried submit must wait for the first one to finish."""
    return Assignment.objects.select_for_update(of=("self",)).filter(pk=assignment_id)


def item_lock(item_id: int) -> QuerySet[ComparisonItem]:
    """Lock an item while deciding whether it is complete. Without it, the last two slots of an item filled
    at the same moment each see the other still open (READ COMMITTED) and nobody completes the item. Always
    taken after the slot's lock, never before, so the two never deadlock."""
    return ComparisonItem.objects.select_for_update(of=("self",)).filter(pk=item_id)
