"""WebSocket routes. Apps contribute their own patterns here."""
from django.urls import path

from labeling.consumers import CampaignEventsConsumer

websocket_urlpatterns = [
    path("ws/campaigns/<int:campaign_id>/", CampaignEventsConsumer.as_asgi()),
]
