"""Writing a large snapshot export with several processes: the snapshot's items cut into ranges of about
equal numbers of judgments (``snapshot_item_bounds``), each range written to a part file of its own by a
forked process with its own database connection, the parts then joined in order by the exporter's
``combine``. Records, PII policy and aggregation are per item, so the parts hold exactly the rows of one
pass; JSON lines join into the same bytes.

Why processes: an export is Python work per record (building canonical records, rows, JSON), which one
process does on one core. Forking (not ``multiprocessing``) because a Celery prefork worker's own
processes are daemonic and may not start ``multiprocessing`` children. The parent closes its database
connections before forking, so each child opens its own and no socket is shared; a child leaves with
``os._exit``, reporting its rows and PII findings, or its error, through a pipe."""
from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import connections

from .. import selectors_governance as gov
from ..exporters import RecordExporter
from ..models import Snapshot
from ..pii import PiiReport


def export_workers(*, records: int, exporter: RecordExporter) -> int:
    """How many processes write an export of ``records`` records: ``LOOPWISE_EXPORT_WORKERS`` (default: the
    cores), one below ``LOOPWISE_EXPORT_PARALLEL_MIN`` records (a fork and a join cost more than a small
    export), and one for formats whose parts can't be joined or on a database other than PostgreSQL."""
    if records < settings.EXPORT_PARALLEL_MIN or not exporter.splittable():
        return 1
    if connections["default"].vendor != "postgresql":
        return 1
    return max(1, settings.EXPORT_WORKERS)


def export_write(*, snapshot: Snapshot, split: str | None, make_exporter: Callable[[], RecordExporter],
                 fh: IO[bytes], workers: int, report: PiiReport, parts_at: Path) -> int:
    """Write the snapshot's records (of ``split``) with exporters from ``make_exporter`` into ``fh``, with
    ``workers`` processes (their parts are files named ``<parts_at>.part<i>``, removed after); returns the
    rows written and adds what the PII policy found to ``report``. The parent's database connections are
    closed first (when there are children)."""
    exporter = make_exporter()
    if workers < 2:
        return exporter.write(gov.snapshot_records(snapshot=snapshot, split=split, pii_report=report), fh)
    cuts = gov.snapshot_item_bounds(snapshot=snapshot, split=split, parts=workers)
    ranges = list(zip([None, *cuts], [*cuts, None], strict=True))
    exporter.preload()
    parts = [parts_at.with_name(f"{parts_at.name}.part{i}") for i in range(len(ranges))]
    try:
        results = _run_parts(snapshot, split, make_exporter, list(zip(ranges, parts, strict=True)))
        rows = 0
        for result in results:
            rows += result["rows"]
            report.merge(result["pii"])
        exporter.combine(parts, fh)
        return rows
    finally:
        for part in parts:
            part.unlink(missing_ok=True)


def _run_parts(snapshot: Snapshot, split: str | None, make_exporter, jobs: list[tuple]) -> list[dict]:
    connections.close_all()  # no child may inherit (and later close) the parent's socket
    children = []
    try:
        for items, part in jobs:
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover (runs in the child; its result comes back through the pipe)
                os.close(read)
                _child(snapshot, split, make_exporter, items, part, write)
            os.close(write)
            children.append((pid, read))
    finally:  # a fork that failed: the children already started are still collected below
        results, errors = [], []
        for index, (pid, read) in enumerate(children):
            with os.fdopen(read, "rb") as pipe:
                message = json.loads(pipe.read() or b'{"error": "it died without a word"}')
            _, status = os.waitpid(pid, 0)
            if status != 0 or "error" in message:
                errors.append(f"part {index}: {message.get('error', f'exit status {status}')}")
            else:
                results.append(message)
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(children)} export parts failed: {'; '.join(errors)}")
    return results


def _child(snapshot, split, make_exporter, items, part: Path, write: int) -> None:
    code = 1
    try:
        report = PiiReport()
        exporter = make_exporter()
        with open(part, "wb") as fh:
            rows = exporter.write(gov.snapshot_records(snapshot=snapshot, split=split, pii_report=report,
                                                       items=items), fh)
        os.write(write, json.dumps({"rows": rows, "pii": report.as_dict()}).encode())
        code = 0
    except BaseException as exc:
        traceback.print_exc()  # the worker's log gets the traceback, the job its message
        os.write(write, json.dumps({"error": f"{type(exc).__name__}: {exc}"[:2000]}).encode())
    finally:
        connections.close_all()
        os._exit(code)
