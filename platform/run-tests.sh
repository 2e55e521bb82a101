#!/usr/bin/env bash
# The whole test suite, against PostgreSQL and Redis on 127.0.0.1 (CI's .ci/run makes sure both are up).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/loopwise}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
export OMP_NUM_THREADS=1
export LOOPWISE_STORAGE_DIR="${LOOPWISE_STORAGE_DIR:-$(mktemp -d)}"

echo "== import contracts"
$BIN/lint-imports
echo "== migrations are up to date"
# (on a throwaway SQLite file: the check needs no server, and the test database does not exist yet)
DATABASE_URL="sqlite:///$LOOPWISE_STORAGE_DIR/migrations-check.sqlite3" $BIN/python manage.py makemigrations --check --dry-run >/dev/null
echo "== tests"
$BIN/pytest -p no:cacheprovider "$@"
