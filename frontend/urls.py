from django.urls import path

from . import views

app_name = "frontend"
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
]
