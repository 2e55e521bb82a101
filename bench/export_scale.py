"""Export at scale on PostgreSQL: N judgments frozen as a snapshot, then written as TRL preference JSONL and
as Parquet by the export job's own code (``snapshot_create`` and ``export_job_run``, as the ``cpu`` worker
runs them), and the streamed TRL export (no snapshot: the HTTP export, ``manage.py export``, the RLHF data
step), against a floor measured in the same run: ``COPY (SELECT ...) TO STDOUT`` of the same columns
(judgment, prompt text, both response texts, joined, in the export's item order), streamed and discarded.
Each export is timed in one process and in as many as the machine has cores (``--workers``; the worker's
``LOOPWISE_EXPORT_WORKERS``): the files' sha256 printed beside them show the parts join into the same file.

    .venv/bin/python bench/export_scale.py                      # 1,000,000 judgments
    .venv/bin/python bench/export_scale.py --judgments 200000 --workers 1,2,4

It creates (and drops) the database named in DATABASE_URL (default ``loopwise_bench_export``) and seeds it
with SQL (``INSERT ... SELECT generate_series``, not timed): one campaign, N / overlap pairwise items, each
with its own prompt (~300 characters) and two responses (~600 characters), N human judgments by a pool of
annotators: ~10% ties, ~3% both-bad, the rest a winner with strength 1-3. Each phase runs in a forked child
process. Peak memory is printed twice: the largest process's peak RSS (``os.wait4`` rusage ``ru_maxrss``),
which includes the Django process it inherits (printed as "start RSS"), and the peak of the proportional set
size (PSS) summed over the phase's processes (an export's parts run in children of its own; shared pages
count once), sampled every 50 ms."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/loopwise_bench_export")
# Export files land here (1M judgments write about 2 GB); removed at the end unless --keep.
STORAGE = tempfile.mkdtemp(prefix="loopwise-bench-export-")
CORES = len(os.sched_getaffinity(0))
os.environ.setdefault("LOOPWISE_STORAGE_DIR", STORAGE)


def _admin_dsn() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("this benchmark needs PostgreSQL in DATABASE_URL")
    return f"host={db['HOST']} port={db['PORT'] or 5432} user={db['USER']} dbname=postgres"


def _database(action: str) -> None:
    import psycopg
    from django.conf import settings
    from django.db import connections

    connections.close_all()
    name = settings.DATABASES["default"]["NAME"]
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if action == "create":
            conn.execute(f'CREATE DATABASE "{name}"')


# Texts: md5 hex words give incompressible, realistic lengths; every 7th text carries a newline, a quote and
# a non-ASCII letter so JSON escaping and UTF-8 are exercised.
SEED_SQL = [
    """INSERT INTO labeling_prompt (id, campaign_id, kind, text, messages, metadata, split, external_id,
           content_hash, created_at)
       SELECT i, %(campaign)s, 'text',
              'Question ' || i || ': ' || CASE WHEN i %% 7 = 0 THEN E'caf\u00e9 "quoted"\\n' ELSE '' END
                || repeat(md5(i::text) || ' ', 8) || left(md5('p' || i), 20),
              '[]'::jsonb, jsonb_build_object('topic', 'topic-' || (i %% 5), 'language', 'en'), '', '',
              encode(sha256(('prompt' || i)::bytea), 'hex'), now()
       FROM generate_series(1, %(items)s) AS i""",
    """INSERT INTO labeling_response (id, prompt_id, round_id, text, model_name, generation_params, metadata,
           content_hash, created_at)
       SELECT r, (r + 1) / 2, %(round)s,
              'Answer ' || r || ': ' || CASE WHEN r %% 7 = 0 THEN E'na\u00efve \\n\\n' ELSE '' END
                || repeat(md5(r::text) || ' ', 17) || left(md5('r' || r), 20 + (r %% 40)),
              CASE WHEN r %% 2 = 0 THEN 'policy-b' ELSE 'policy-a' END, '{"temperature": 0.7}'::jsonb, '{}'::jsonb,
              encode(sha256(('response' || r)::bytea), 'hex'), now()
       FROM generate_series(1, 2 * %(items)s) AS r""",
    """INSERT INTO labeling_comparisonitem (id, campaign_id, round_id, prompt_id, kind, status, content_hash,
           metadata, is_gold, gold_answer, created_at)
       SELECT i, %(campaign)s, %(round)s, i, 'pairwise', 'complete', encode(sha256(('item' || i)::bytea), 'hex'),
              '{}'::jsonb, false, '{}'::jsonb, now()
       FROM generate_series(1, %(items)s) AS i""",
    """INSERT INTO labeling_itemresponse (id, item_id, response_id, position)
       SELECT r, (r + 1) / 2, r, (r + 1) %% 2 FROM generate_series(1, 2 * %(items)s) AS r""",
    # Outcome by (j * 7919) %% 100: < 10 tie, < 13 both-bad, else a winner (a or b by parity), strength 1-3.
    """INSERT INTO labeling_judgment (id, campaign_id, round_id, item_id, assignment_id, annotator_id, source,
           source_name, kind, winner_id, tie, both_bad, strength, ranking, rationale, time_spent_ms, shown_order,
           client_id, created_at)
       SELECT j, %(campaign)s, %(round)s, it, NULL,
              (%(users)s)[1 + ((j - 1) %% %(overlap)s + it) %% cardinality(%(users)s)], 'human', '', 'pairwise',
              CASE WHEN o >= 13 THEN 2 * it - 1 + (j %% 2) END, o < 10, o >= 10 AND o < 13,
              CASE WHEN o >= 13 THEN 1 + j %% 3 END,
              CASE WHEN o >= 13 THEN jsonb_build_array(jsonb_build_array(2 * it - 1 + (j %% 2)),
                                                       jsonb_build_array(2 * it - (j %% 2)))
                   ELSE jsonb_build_array(jsonb_build_array(2 * it - 1, 2 * it)) END,
              CASE WHEN j %% 4 = 0 THEN 'The chosen answer is more accurate and follows the question closely.'
                   ELSE '' END,
              2000 + j %% 9000,
              CASE WHEN j %% 3 = 0 THEN jsonb_build_array(2 * it, 2 * it - 1)
                   ELSE jsonb_build_array(2 * it - 1, 2 * it) END,
              NULL, now() - make_interval(secs => j)
       FROM (SELECT j, (j - 1) / %(overlap)s + 1 AS it, (j::bigint * 7919) %% 100 AS o
             FROM generate_series(1, %(judgments)s) AS j) AS s""",
]


def seed(judgments: int, overlap: int, annotators: int):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from labeling.services.campaigns import campaign_create, round_current

    call_command("migrate", verbosity=0)
    campaign = campaign_create(created_by=None, name="export bench", overlap=overlap)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"annotator{i}") for i in range(annotators)])
    params = {"campaign": campaign.pk, "round": round_current(campaign=campaign).pk, "items": -(-judgments // overlap),
              "judgments": judgments, "overlap": overlap, "users": [u.pk for u in users]}
    with connection.cursor() as cursor:
        for sql in SEED_SQL:
            cursor.execute(sql, params)
        for table in ("prompt", "response", "comparisonitem", "itemresponse", "judgment"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('labeling_{table}', 'id'), "
                           f"(SELECT max(id) FROM labeling_{table}))")
        cursor.execute("ANALYZE")
    return campaign


FLOOR_SQL = """COPY (
    SELECT j.id, j.item_id, j.annotator_id, j.winner_id, j.tie, j.both_bad, j.strength, j.ranking, j.rationale,
           j.time_spent_ms, j.shown_order, j.created_at, p.id, p.text, p.metadata, p.content_hash,
           ra.id, ra.text, ra.model_name, rb.id, rb.text, rb.model_name
    FROM labeling_judgment j
    JOIN labeling_comparisonitem i ON i.id = j.item_id
    JOIN labeling_prompt p ON p.id = i.prompt_id
    JOIN labeling_itemresponse ia ON ia.item_id = i.id AND ia.position = 0
    JOIN labeling_response ra ON ra.id = ia.response_id
    JOIN labeling_itemresponse ib ON ib.item_id = i.id AND ib.position = 1
    JOIN labeling_response rb ON rb.id = ib.response_id
    WHERE j.campaign_id = {campaign} ORDER BY j.item_id, j.id
) TO STDOUT"""


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _tree_pss_mb(root: int) -> float:
    """The summed proportional set size (PSS) of ``root`` and its descendants (an export's parts run in
    forked children): pages the processes share count once in all, split between them, where summing RSS
    would count them once per process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("Pss:")) / 1024
        except (OSError, StopIteration):
            pass
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


class _TreePeak(threading.Thread):
    """Samples ``_tree_pss_mb(pid)`` every 50 ms until stopped; ``peak`` is the largest sample."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, _tree_pss_mb(self.pid))


def in_child(work) -> tuple[float, float, float, float, float, str]:
    """Run ``work()`` (returning a short description) in a forked child: (wall seconds, CPU seconds of the
    child and its children, start RSS MB, peak RSS MB of the largest process, peak summed PSS MB of the
    child and its children, description). Forked, so each phase's peak is its own, not the largest so far
    of one process. CPU time is shown because wall time on a shared box includes waiting for a core."""
    from django.db import connections

    connections.close_all()  # the child must not share the parent's socket
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 1
        try:
            start_rss = _rss_mb()
            started = time.perf_counter()
            text = work()
            elapsed = time.perf_counter() - started
            os.write(write, f"{elapsed}\t{start_rss}\t{text}".encode())
            code = 0
        finally:
            connections.close_all()
            os._exit(code)
    os.close(write)
    sampler = _TreePeak(pid)
    sampler.start()
    with os.fdopen(read, "rb") as fh:
        out = fh.read().decode()
    _, status, usage = os.wait4(pid, 0)
    sampler.done.set()
    sampler.join()
    if status != 0:
        raise RuntimeError("a benchmark phase failed (its traceback is above)")
    elapsed, start_rss, text = out.split("\t", 2)
    # wait4's usage covers the child and the children it waited for: CPU summed, maxrss the largest one.
    return (float(elapsed), usage.ru_utime + usage.ru_stime, float(start_rss), usage.ru_maxrss / 1024,
            sampler.peak, text)


def floor_phase(campaign_id: int):
    def work() -> str:
        from django.db import connection

        size = 0
        with connection.cursor() as cursor, cursor.connection.cursor().copy(FLOOR_SQL.format(campaign=int(campaign_id))) as copy:
            for block in copy:
                size += len(block)
        return f"{size / 1e6:.0f} MB of COPY text"

    return work


def snapshot_phase(campaign_id: int):
    def work() -> str:
        from labeling.models import Campaign
        from labeling.services.snapshots import snapshot_create

        snapshot = snapshot_create(campaign=Campaign.objects.get(pk=campaign_id), created_by=None)
        return f"snapshot {snapshot.pk}, {snapshot.records_count} records"

    return work


def agreement_phase(campaign_id: int):
    """The manifest's human-agreement figures, which snapshot_create computes over the campaign: timed on
    their own to show their share of the snapshot phase."""
    def work() -> str:
        from labeling.models import Campaign
        from labeling.selectors_quality import agreement_report

        report = agreement_report(campaign=Campaign.objects.get(pk=campaign_id), n_boot=100)
        return f"{report['judgments']} judgments"

    return work


def export_phase(job_id: int, workers: int):
    def work() -> str:
        from django.conf import settings

        from labeling.services.snapshots import export_job_run

        settings.EXPORT_WORKERS = workers  # LOOPWISE_EXPORT_WORKERS, as the worker's settings read it
        job = export_job_run(job_id=job_id)
        return f"{job.records} rows, {job.size_bytes / 1e6:.0f} MB, sha256 {job.sha256[:12]}"

    return work


def stream_phase(campaign_id: int):
    """The streamed TRL export (``GET .../export/``, ``manage.py export``, the RLHF loop's data step): no
    snapshot, judgments read as they are now."""
    def work() -> str:
        from labeling.exporters import exporter_get
        from labeling.models import Campaign
        from labeling.selectors import judgments_for_export

        size = 0
        exporter = exporter_get("trl-preference", {"margin": "strength"})
        with open(os.devnull, "wb") as sink:
            for block in exporter.stream(judgments_for_export(campaign=Campaign.objects.get(pk=campaign_id))):
                size += sink.write(block)
        return f"{size / 1e6:.0f} MB"

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--overlap", type=int, default=3, help="judgments per item")
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--workers", default=f"1,{CORES}",
                        help="export processes to time each export with, comma-separated (default 1 and the cores)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]

    import django

    django.setup()
    from labeling.models import ExportJob, Snapshot

    _database("create")
    try:
        started = time.perf_counter()
        campaign = seed(args.judgments, args.overlap, args.annotators)
        print(f"seeded {args.judgments} judgments on {-(-args.judgments // args.overlap)} items in "
              f"{time.perf_counter() - started:.0f} s (not counted)", flush=True)
        results = [("floor: COPY joined rows TO STDOUT", *in_child(floor_phase(campaign.pk)))]
        print(_line(*results[-1], args.judgments), flush=True)
        results.append(("snapshot_create", *in_child(snapshot_phase(campaign.pk))))
        print(_line(*results[-1], args.judgments), flush=True)
        part = ("  of which agreement (manifest)", *in_child(agreement_phase(campaign.pk)))
        print(_line(*part, args.judgments), flush=True)
        snapshot = Snapshot.objects.get(campaign=campaign)
        for fmt, options in (("trl-preference", {"margin": "strength"}), ("parquet", {})):
            for n in workers:
                # The job row export_job_create would make; export_job_run is what the cpu worker's task calls.
                job = ExportJob.objects.create(campaign=campaign, snapshot=snapshot, format=fmt, options=options)
                results.append((f"export {fmt}, {n} process{'es' if n > 1 else ''}", *in_child(export_phase(job.pk, n))))
                print(_line(*results[-1], args.judgments), flush=True)
        part = ("streamed trl-preference (no snapshot)", *in_child(stream_phase(campaign.pk)))
        print(_line(*part, args.judgments), flush=True)
        floor = results[0][1]
        print("ratios against the floor (phase wall time / floor wall time):")
        for name, seconds, *_ in results[1:]:
            print(f"  {name:<36} {seconds / floor:6.1f}x")
    finally:
        if not args.keep:
            _database("drop")
            shutil.rmtree(STORAGE, ignore_errors=True)


def _line(name: str, seconds: float, cpu: float, start_rss: float, peak_rss: float, tree_rss: float, text: str,
          judgments: int) -> str:
    return (f"{name:<36} {seconds:7.1f} s (CPU {cpu:6.1f} s) {judgments / seconds:8.0f} judgments/s  "
            f"peak RSS {peak_rss:5.0f} MB, all processes {tree_rss:5.0f} MB PSS (start {start_rss:3.0f} MB)  {text}")


if __name__ == "__main__":
    main()
