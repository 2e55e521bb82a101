"""Live events for the campaign dashboard. Sent only after the transaction commits (a rolled-back judgment
must never show up on a screen), through the channel layer: Redis across processes in production, in memory
on the embedded default."""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def campaign_group(campaign_id: int) -> str:
    return f"campaign.{campaign_id}"


def _send(campaign_id: int, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(campaign_group(campaign_id), message)
    except Exception:  # a dashboard that misses an event must never fail a judgment
        log.warning("could not send %s for campaign %s", message.get("event"), campaign_id, exc_info=True)


# Subscriptions let another app react to an event without this app importing it (the rlhf app starts its loop
# on ``judgment.recorded`` and ``round.closed``). A callback gets ``(campaign_id, payload)`` after the transaction
# commits; it must be quick and may only enqueue work (a Celery task). Its errors are logged, never raised.
Subscriber = Callable[[int, dict], None]
_subscribers: dict[str, list[Subscriber]] = {}


def subscribe(event_type: str, callback: Subscriber) -> None:
    """Call ``callback(campaign_id, payload)`` after each committed ``event_type`` event (once per callback)."""
    callbacks = _subscribers.setdefault(event_type, [])
    if callback not in callbacks:
        callbacks.append(callback)


def _notify(callback: Subscriber, campaign_id: int, payload: dict) -> None:
    try:
        callback(campaign_id, payload)
    except Exception:  # a subscriber must never fail the request that recorded the event
        log.warning("event subscriber %r failed for campaign %s", callback, campaign_id, exc_info=True)


def send_event_on_commit(*, campaign_id: int, type: str, payload: dict) -> None:
    message = {"type": "campaign.event", "event": type, "payload": payload}
    transaction.on_commit(lambda: _send(campaign_id, message))
    for callback in _subscribers.get(type, ()):
        transaction.on_commit(partial(_notify, callback, campaign_id, payload))
