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

from . import governance  # noqa: E402  (data governance: snapshots, exports, bias, PII policy, deletion, audit)

urlpatterns += [
    path("campaigns/<int:campaign_id>/snapshots/", governance.SnapshotListView.as_view(), name="snapshots"),
    path("campaigns/<int:campaign_id>/snapshots/<int:snapshot_id>/", governance.SnapshotDetailView.as_view(),
         name="snapshot"),
    path("campaigns/<int:campaign_id>/snapshots/<int:snapshot_id>/download/",
         governance.SnapshotDownloadView.as_view(), name="snapshot-download"),
    path("campaigns/<int:campaign_id>/exports/", governance.ExportListView.as_view(), name="exports"),
    path("campaigns/<int:campaign_id>/exports/<int:job_id>/", governance.ExportDetailView.as_view(), name="export-job"),
    path("campaigns/<int:campaign_id>/exports/<int:job_id>/download/", governance.ExportDownloadView.as_view(),
         name="export-download"),
    path("campaigns/<int:campaign_id>/bias/", governance.BiasView.as_view(), name="bias"),
    path("campaigns/<int:campaign_id>/pii-policy/", governance.PiiPolicyView.as_view(), name="pii-policy"),
    path("campaigns/<int:campaign_id>/deletions/", governance.DeletionView.as_view(), name="deletions"),
    path("audit/", governance.AuditListView.as_view(), name="audit"),
]

# Quality control (labeling.api.quality).
from . import quality as q  # noqa: E402

_C = "campaigns/<int:campaign_id>/"
urlpatterns += [
    path(_C + "quality/agreement/", q.AgreementView.as_view(), name="quality-agreement"),
    path(_C + "quality/annotators/", q.AnnotatorQualityView.as_view(), name="quality-annotators"),
    path(_C + "quality/gold-accuracy/", q.GoldAccuracyView.as_view(), name="quality-gold-accuracy"),
    path(_C + "quality/settings/", q.QualitySettingsView.as_view(), name="quality-settings"),
    path(_C + "quality/consensus/", q.ConsensusView.as_view(), name="quality-consensus"),
    path(_C + "quality/flags/", q.FlagListView.as_view(), name="quality-flags"),
    path(_C + "quality/flags/<int:flag_id>/resolve/", q.FlagResolveView.as_view(), name="quality-flag-resolve"),
    path(_C + "gold/", q.GoldListView.as_view(), name="gold"),
    path(_C + "gold/from-labels/", q.GoldFromLabelsView.as_view(), name="gold-from-labels"),
    path(_C + "gold/<int:item_id>/", q.GoldDetailView.as_view(), name="gold-item"),
    path(_C + "review/", q.ReviewQueueView.as_view(), name="review"),
    path(_C + "review/<int:item_id>/", q.AdjudicateView.as_view(), name="adjudicate"),
    path(_C + "leaderboard/", q.LeaderboardView.as_view(), name="leaderboard"),
]
