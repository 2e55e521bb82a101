from django.urls import path

from . import views

app_name = "rlhf-api"
urlpatterns = [
    path("base-models/", views.BaseModelListView.as_view(), name="base-models"),
    path("campaigns/<int:campaign_id>/runs/", views.RunListView.as_view(), name="runs"),
    path("runs/<int:run_id>/", views.RunDetailView.as_view(), name="run"),
    path("runs/<int:run_id>/progress/", views.RunProgressView.as_view(), name="run-progress"),
    path("runs/<int:run_id>/cancel/", views.RunCancelView.as_view(), name="run-cancel"),
    path("campaigns/<int:campaign_id>/policies/", views.PolicyListView.as_view(), name="policies"),
    path("policies/<int:policy_id>/lineage/", views.PolicyLineageView.as_view(), name="policy-lineage"),
    path("campaigns/<int:campaign_id>/policies/<int:policy_id>/rollback/", views.PolicyRollbackView.as_view(),
         name="policy-rollback"),
    path("campaigns/<int:campaign_id>/reward-models/", views.RewardModelListView.as_view(), name="reward-models"),
    path("campaigns/<int:campaign_id>/loop/", views.LoopConfigView.as_view(), name="loop"),
    path("campaigns/<int:campaign_id>/loop/status/", views.LoopStatusView.as_view(), name="loop-status"),
    path("campaigns/<int:campaign_id>/loop/start/", views.LoopStartView.as_view(), name="loop-start"),
    path("campaigns/<int:campaign_id>/loop/step/", views.LoopStepView.as_view(), name="loop-step"),
    path("campaigns/<int:campaign_id>/human-evals/", views.HumanEvalListView.as_view(), name="human-evals"),
    path("campaigns/<int:campaign_id>/human-evals/<int:human_eval_id>/", views.HumanEvalDetailView.as_view(),
         name="human-eval"),
]
