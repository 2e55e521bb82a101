from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from . import transfer, views

app_name = "api"
urlpatterns = [
    path("auth/token/", obtain_auth_token, name="token"),
    path("campaigns/", views.CampaignListView.as_view(), name="campaigns"),
    path("campaigns/<int:campaign_id>/", views.CampaignDetailView.as_view(), name="campaign"),
    path("campaigns/<int:campaign_id>/stats/", views.CampaignStatsView.as_view(), name="campaign-stats"),
    path("campaigns/<int:campaign_id>/progress/", views.ProgressView.as_view(), name="campaign-progress"),
    path("campaigns/<int:campaign_id>/members/", views.MemberListView.as_view(), name="members"),
    path("campaigns/<int:campaign_id>/members/<int:user_id>/pause/", views.MemberPauseView.as_view(), name="member-pause"),
    path(
        "campaigns/<int:campaign_id>/members/<int:user_id>/<str:role>/",
        views.MemberDetailView.as_view(),
        name="member",
    ),
    path("campaigns/<int:campaign_id>/rounds/", views.RoundListView.as_view(), name="rounds"),
    path("campaigns/<int:campaign_id>/rounds/<int:round_id>/close/", views.RoundCloseView.as_view(), name="round-close"),
    path("campaigns/<int:campaign_id>/prompts/", views.PromptListView.as_view(), name="prompts"),
    path("campaigns/<int:campaign_id>/items/", views.ItemListView.as_view(), name="items"),
    path("campaigns/<int:campaign_id>/judgments/", views.JudgmentListView.as_view(), name="judgments"),
    path("campaigns/<int:campaign_id>/queue/next/", views.QueueNextView.as_view(), name="queue-next"),
    path("items/<int:item_id>/", views.ItemDetailView.as_view(), name="item"),
    path("assignments/<int:assignment_id>/", views.AssignmentDetailView.as_view(), name="assignment"),
    path("assignments/<int:assignment_id>/submit/", views.SubmitView.as_view(), name="submit"),
    path("assignments/<int:assignment_id>/skip/", views.SkipView.as_view(), name="skip"),
    path("assignments/<int:assignment_id>/release/", views.ReleaseView.as_view(), name="release"),
    path("judgments/<int:judgment_id>/undo/", views.UndoView.as_view(), name="undo"),
    path("campaigns/<int:campaign_id>/imports/", transfer.ImportView.as_view(), name="imports"),
    path("campaigns/<int:campaign_id>/export/", transfer.ExportView.as_view(), name="export"),
]
