#!/bin/sh
# Container entrypoint: `web` migrates and serves ASGI; `cpu-worker` / `gpu-worker` run Celery on one queue.
set -e
case "$1" in
  web)
    python manage.py migrate --noinput
    python manage.py collectstatic --noinput -v0
    exec daphne -b 0.0.0.0 -p 8000 --proxy-headers config.asgi:application ;;
  cpu-worker)
    exec celery -A config worker -Q cpu --concurrency "${CPU_WORKER_CONCURRENCY:-2}" --loglevel INFO ;;
  gpu-worker)
    # One training job at a time per GPU worker: jobs hold the whole device.
    exec celery -A config worker -Q gpu --concurrency 1 --prefetch-multiplier 1 --loglevel INFO ;;
  *)
    exec "$@" ;;
esac
