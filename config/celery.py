"""The Celery app. Broker: Redis when REDIS_URL is set, else a filesystem broker under the storage
directory, so the embedded default still runs real worker processes without any server."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("loopwise")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
