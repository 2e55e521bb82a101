"""Every row lock the labeling app takes, named, in one place. A function that needs a lock calls one of these
inside its transaction and says so in its docstring."""
from __future__ import annotations

from django.db import connection
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


# The queue's hot path is hand-written SQL (``labeling.services.queue_sql``); these are its lock clauses, the same
# locks as above. Empty where the database has no row locks (SQLite: IMMEDIATE transactions serialise writers).


def slot_pick_lock_sql(alias: str) -> str:
    """Appended to the subquery that picks a free slot for ``next``: lock it, skipping any another transaction
    holds (as ``assignment_slots_open_for_update``)."""
    if not connection.features.has_select_for_update_skip_locked:
        return ""
    return f" FOR UPDATE OF {alias} SKIP LOCKED"


def slot_and_item_lock_sql(slot_alias: str, item_alias: str) -> str:
    """Appended to submit's read of the slot joined to its item: lock both and wait, the slot first and then
    its item (one statement locks them in this order), as ``assignment_lock`` followed by ``item_lock``."""
    if not connection.features.has_select_for_update:
        return ""
    return f" FOR UPDATE OF {slot_alias}, {item_alias}"
