#!/usr/bin/env bash
# Runs Loopwise on the embedded defaults: a SQLite file and a filesystem Celery broker under var/, a real
# Celery worker process, and the ASGI server (HTTP + WebSockets). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export LOOPWISE_HTTPS="${LOOPWISE_HTTPS:-0}"   # plain HTTP on localhost: cookies can't be Secure
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
HOST="${LOOPWISE_HOST:-127.0.0.1}"
PORT="${LOOPWISE_PORT:-8000}"

$BIN/python manage.py migrate --noinput
$BIN/python manage.py seed_demo

$BIN/celery -A config worker -Q cpu,gpu --pool solo --loglevel INFO >var/worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM

cat <<MSG

  Loopwise is running at  http://$HOST:$PORT/
  API docs:               http://$HOST:$PORT/api/docs/
  Django admin:           http://$HOST:$PORT/admin/

  Demo logins (password for all: loopwise-demo)
    admin       site staff, admin of the demo campaign
    annotator1  annotator
    annotator2  annotator
    researcher  researcher (reads and exports)

  Worker log: var/worker.log      Stop: Ctrl-C
MSG
$BIN/daphne -b "$HOST" -p "$PORT" config.asgi:application
