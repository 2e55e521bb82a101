from django.contrib.auth import views as auth_views
from django.urls import path

from . import views, views_runs
from .security import with_csp

app_name = "frontend"
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("", views.home, name="home"),
    path(
        "login/",
        with_csp(auth_views.LoginView.as_view(template_name="frontend/login.html", redirect_authenticated_user=True)),
        name="login",
    ),
    path("logout/", with_csp(auth_views.LogoutView.as_view()), name="logout"),
    path("campaigns/new/", views.campaign_create, name="campaign-create"),
    path("campaigns/<int:campaign_id>/annotate/", views.annotate, name="annotate"),
    path("campaigns/<int:campaign_id>/settings/", views.campaign_settings, name="campaign-settings"),
    path("campaigns/<int:campaign_id>/members/", views.members, name="members"),
    path("campaigns/<int:campaign_id>/dashboard/", views.dashboard, name="dashboard"),
    path("campaigns/<int:campaign_id>/dashboard/data/", views.dashboard_data, name="dashboard-data"),
    path("campaigns/<int:campaign_id>/judgments/", views.judgments, name="judgments"),
    path("campaigns/<int:campaign_id>/items/<int:item_id>/", views.item_detail, name="item"),
    path("campaigns/<int:campaign_id>/import/", views.imports, name="imports"),
    path("campaigns/<int:campaign_id>/export/", views.export, name="export"),
    path("campaigns/<int:campaign_id>/bias/", views.bias, name="bias"),
    path("campaigns/<int:campaign_id>/runs/", views_runs.runs, name="runs"),
    path("campaigns/<int:campaign_id>/runs/data/", views_runs.runs_data, name="runs-data"),
    path("campaigns/<int:campaign_id>/runs/compare/", views_runs.runs_compare, name="runs-compare"),
    path("campaigns/<int:campaign_id>/runs/<int:run_id>/", views_runs.run_detail, name="run"),
    path("preview/markdown/", views.markdown_preview, name="markdown-preview"),
]
