"""A real Celery worker for tests: a subprocess reading the pytest database, with this process's Celery app
publishing to the same broker while it runs. Tests that use it need ``django_db(transaction=True)`` (the
worker sees only committed rows) and PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[1]


def test_database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _reset_pool(app) -> None:
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None  # it holds the old connection pool
    import kombu.pools

    kombu.pools.reset()  # and so does kombu's registry of producer pools, keyed by connection


def _broker(redis_url: str | None, storage: Path) -> tuple[str, dict]:
    """This process's side of the broker: the Redis URL (flushed: no stale messages from an earlier run), or
    the filesystem broker under ``storage`` exactly where the worker's settings will put it."""
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url).flushdb()
        except redis.exceptions.ConnectionError:
            pytest.skip(f"no Redis at {redis_url}")
        return redis_url, {}
    broker = storage / "broker"
    for sub in ("out", "processed", "control"):
        (broker / sub).mkdir(parents=True, exist_ok=True)
    return "filesystem://localhost//", {
        "data_folder_in": str(broker / "out"),
        "data_folder_out": str(broker / "out"),
        "data_folder_processed": str(broker / "processed"),
        "control_folder": str(broker / "control"),
        "polling_interval": 0.2,
    }


@contextmanager
def celery_worker(*, queues: str, storage: Path, log_path: Path, redis_url: str | None,
                  env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run ``celery worker -Q queues`` on Redis (``redis_url``) or, with None, on the embedded filesystem
    broker (REDIS_URL unset, as in ``make demo``), with ``env`` added to its environment. Yields the
    process; stops it and restores the app after."""
    if connection.vendor != "postgresql":
        pytest.skip("the worker shares the PostgreSQL test database (DATABASE_URL)")
    from config.celery import app

    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    app.conf.broker_url, app.conf.broker_transport_options = _broker(redis_url, storage)
    _reset_pool(app)
    env = {**os.environ, "DATABASE_URL": test_database_url(), "LOOPWISE_STORAGE_DIR": str(storage),
           "DB_CONN_MAX_AGE": "0", "OMP_NUM_THREADS": "1", **(env or {})}
    env.pop("TEST_DATABASE_NAME", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "--pool", "solo", "--concurrency", "1",
         "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        app.conf.broker_url, app.conf.broker_transport_options = saved
        _reset_pool(app)


def wait_for(what: str, check: Callable, proc: subprocess.Popen, log: Path, *, timeout: float,
             interval: float = 0.25, context: Callable[[], str] = lambda: ""):
    """Poll ``check`` until it returns something truthy (returned) while the worker lives; else fail the test
    with ``context()`` (what the database says went wrong) and the tail of the worker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            break
        time.sleep(interval)
    tail = log.read_text()[-6000:] if log.exists() else ""
    pytest.fail(f"timed out waiting for {what}; {context()}\nworker log:\n{tail}")
