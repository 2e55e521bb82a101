"""WebSocket consumer for a campaign's live events. Only the campaign's admins and researchers (and staff)
may listen; anyone else is closed with 4403 before joining the group."""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .errors import LoopwiseError
from .events import campaign_group
from .models import Role
from .selectors import campaign_get_for_roles


class CampaignEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        campaign_id = int(self.scope["url_route"]["kwargs"]["campaign_id"])
        if user is None or not user.is_authenticated or not await self._may_watch(user, campaign_id):
            await self.close(code=4403)
            return
        self.group = campaign_group(campaign_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    @database_sync_to_async
    def _may_watch(self, user, campaign_id: int) -> bool:
        try:
            campaign_get_for_roles(user=user, campaign_id=campaign_id, roles=[Role.ADMIN, Role.RESEARCHER])
        except LoopwiseError:
            return False
        return True

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def campaign_event(self, message: dict) -> None:
        await self.send_json({"event": message["event"], "payload": message["payload"]})
