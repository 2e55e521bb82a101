"""Annotator-queue throughput on PostgreSQL: many annotators doing next + submit through the real services,
against a floor measured in the same run (each thread doing the bare minimum of writes a judgment needs:
lock one free row with SKIP LOCKED, update it, insert one row, commit).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loopwise_bench .venv/bin/python bench/queue_throughput.py

It creates (and drops) the database named in DATABASE_URL. Prints judgments per second for both and the
ratio platform / floor: the platform's cost over the least any correct queue could do on this database.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/loopwise_bench")


def _recreate_database() -> None:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("this benchmark needs PostgreSQL in DATABASE_URL")
    admin_dsn = f"host={db['HOST']} port={db['PORT'] or 5432} user={db['USER']} dbname=postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db["NAME"]}"')
        conn.execute(f'CREATE DATABASE "{db["NAME"]}"')


def _seed(items: int, overlap: int, annotators: int):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from labeling.models import Role
    from labeling.services.campaigns import campaign_create, membership_add, round_current
    from labeling.services.items import ItemSpec, PromptSpec, ResponseSpec, items_create

    call_command("migrate", verbosity=0)
    campaign = campaign_create(created_by=None, name="bench", overlap=overlap)
    users = [get_user_model().objects.create(username=f"bench{i}") for i in range(annotators)]
    for user in users:
        membership_add(campaign=campaign, user=user, role=Role.ANNOTATOR)
    specs = (
        ItemSpec(prompt=PromptSpec(text=f"prompt {i}"), responses=[ResponseSpec(text=f"a {i}"), ResponseSpec(text=f"b {i}")])
        for i in range(items)
    )
    items_create(campaign=campaign, round=round_current(campaign=campaign), specs=specs)
    return campaign, users


def _run_threads(target, users) -> tuple[int, float]:
    from django.db import connections

    counts: list[int] = []
    errors: list[BaseException] = []

    def work(user):
        try:
            counts.append(target(user))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts), time.perf_counter() - start


def _run_processes(target, users, processes: int) -> tuple[int, float]:
    """Like production: several server processes (no shared GIL), each with annotator threads of its own."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # children must not share the parent's socket
    groups = [users[i::processes] for i in range(processes)]
    ctx = multiprocessing.get_context("fork")  # fork: the target closures are inherited, not pickled
    results = ctx.Queue()
    children = [ctx.Process(target=lambda g=g: results.put(_run_threads(target, g)[0])) for g in groups]
    start = time.perf_counter()
    for child in children:
        child.start()
    total = sum(results.get(timeout=600) for _ in children)
    for child in children:
        child.join()
    if any(child.exitcode for child in children):
        raise RuntimeError("a benchmark process failed")
    return total, time.perf_counter() - start


def platform_worker(campaign):
    from labeling.services.queue import assignment_next, judgment_record
    from labeling.services.validation import JudgmentInput

    def loop(user) -> int:
        done = 0
        while (slot := assignment_next(user=user, campaign=campaign)) is not None:
            judgment_record(user=user, assignment_id=slot.pk, data=JudgmentInput(winner=slot.shown_order[0], client_id=uuid.uuid4()))
            done += 1
        return done

    return loop


FLOOR_SETUP = """
CREATE TABLE IF NOT EXISTS bench_slot (id bigserial PRIMARY KEY, taken_by bigint);
CREATE TABLE IF NOT EXISTS bench_judgment (id bigserial PRIMARY KEY, slot_id bigint, annotator bigint, winner bigint);
TRUNCATE bench_slot, bench_judgment;
"""


def floor_worker(total_slots: int):
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute(FLOOR_SETUP)
        cursor.execute("INSERT INTO bench_slot (taken_by) SELECT NULL FROM generate_series(1, %s)", [total_slots])

    def loop(user) -> int:
        done = 0
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id FROM bench_slot WHERE taken_by IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
                )
                row = cursor.fetchone()
                if row is None:
                    return done
                cursor.execute("UPDATE bench_slot SET taken_by = %s WHERE id = %s", [user.pk, row[0]])
                cursor.execute("INSERT INTO bench_judgment (slot_id, annotator, winner) VALUES (%s, %s, 1)", [row[0], user.pk])
            done += 1

    return loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2, help="server processes (threads share one GIL)")
    args = parser.parse_args()

    import django

    django.setup()
    _recreate_database()
    campaign, users = _seed(args.items, args.overlap, args.annotators)
    run = (lambda t, u: _run_processes(t, u, args.processes)) if args.processes > 1 else _run_threads
    n_floor, t_floor = run(floor_worker(args.items * args.overlap), users)
    n_platform, t_platform = run(platform_worker(campaign), users)
    assert n_platform == args.items * args.overlap, f"platform stored {n_platform} judgments, expected {args.items * args.overlap}"
    floor, platform = n_floor / t_floor, n_platform / t_platform
    print(f"annotators={args.annotators} processes={args.processes} items={args.items} overlap={args.overlap} judgments={n_platform}")
    print(f"floor    (lock+update+insert, raw SQL): {floor:8.1f} judgments/s")
    print(f"platform (next + submit services)     : {platform:8.1f} judgments/s")
    print(f"ratio platform/floor: {platform / floor:.2f}")


if __name__ == "__main__":
    main()
