"""Snapshots: an immutable, content-hashed set of a campaign's judgments with a manifest, and the
prompt-level split of its records.

Hash. sha256 over a canonical serialisation: the inputs (campaign, rounds, filters, aggregation, split rule,
PII policy rule) as sorted-key JSON, then every canonical record (``selectors_governance``) in item / judgment
order, one sorted-key JSON line each. Creator and time are left out, so the same inputs over the same data give
the same hash, and any change to a judgment, a text or an input gives a new one. Creating a snapshot that
already exists (same campaign, same hash, nothing deleted since) returns the existing one.

Splits. Per prompt, never per judgment: ``bucket = sha256("<seed>:<prompt content hash>")`` read as a
fraction in [0, 1) against the cumulative ratios, so every response and judgment of one prompt lands in one
split, and the assignment depends only on the seed and the prompt's content (not on ids or on the order of
import). A prompt whose split was fixed at import (``Prompt.split``) keeps it; the manifest counts those.
"""
from __future__ import annotations

import gc
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from json.encoder import encode_basestring
from pathlib import Path

import orjson
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.text import slugify

from .. import selectors_governance as gov
from ..errors import ValidationError
from ..exporters import files, record_exporter_get
from ..models import Campaign, ExportJob, Judgment, Prompt, Round, Snapshot, SnapshotMember
from ..pii import PiiReport
from ..pii.campaign import policy_for
from ..selectors_quality import agreement_report
from ..selectors_records import ItemContext, canonical_record, judgment_rows
from .audit import audit_record
from .export_parts import export_workers, export_write

AGGREGATIONS = ("none", "majority")
SPLITS = ("train", "validation", "test")
BATCH = 2000
ANALYZE_AFTER = 10_000


def split_for(*, prompt_hash: str, seed: int, ratios: Sequence[float]) -> str:
    digest = hashlib.sha256(f"{seed}:{prompt_hash}".encode()).hexdigest()
    fraction = int(digest[:15], 16) / 16**15
    edge = 0.0
    for name, ratio in zip(SPLITS, ratios, strict=True):
        edge += ratio
        if fraction < edge:
            return name
    return SPLITS[-1]


def _check_inputs(campaign: Campaign, round_ids, filters, aggregation, split_seed, split_ratios) -> tuple:
    if aggregation not in AGGREGATIONS:
        raise ValidationError(f"aggregation must be one of {list(AGGREGATIONS)} (got {aggregation!r})", field="aggregation")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise ValidationError("split_seed must be an integer", field="split_seed")
    ratios = tuple(float(r) for r in split_ratios)
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValidationError("split_ratios must be three non-negative numbers (train, validation, test) summing to 1",
                              field="split_ratios")
    filters = dict(filters or {})
    for key, value in filters.items():
        if key not in gov.FILTER_KEYS:
            raise ValidationError(f"unknown filter {key!r}; filters: {sorted(gov.FILTER_KEYS)}", field=f"filters.{key}")
        if not isinstance(value, gov.FILTER_KEYS[key]) or (gov.FILTER_KEYS[key] is int and isinstance(value, bool)):
            raise ValidationError(f"filters.{key} must be a {gov.FILTER_KEYS[key].__name__}", field=f"filters.{key}")
    if "kinds" in filters and set(filters["kinds"]) - set(Judgment.Kind.values):
        raise ValidationError(f"filters.kinds must be among {Judgment.Kind.values}", field="filters.kinds")
    rounds = sorted(set(round_ids or []))
    if rounds:
        found = dict(Round.objects.filter(campaign=campaign, pk__in=rounds).values_list("pk", "number"))
        missing = [r for r in rounds if r not in found]
        if missing:
            raise ValidationError(f"rounds {missing} are not rounds of campaign {campaign.pk}", field="round_ids")
    return rounds, {k: filters[k] for k in sorted(filters)}, ratios


@contextmanager
def gc_paused() -> Iterator[None]:
    """Cyclic garbage collection off for a bulk pass over records. A million records are tens of millions of
    short-lived containers, none in a cycle (reference counting frees each as it goes), yet every
    collection the allocations trigger walks all live objects: a quarter of an export's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# One encoder for every line: json.dumps with options builds a new encoder per call.
_CANONICAL_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _line(value: object) -> bytes:
    return (_CANONICAL_JSON.encode(value) + "\n").encode()


def _compact(value: object) -> str:
    """``_CANONICAL_JSON.encode(value)``, the same text, faster where that is safe: a string or an integer
    directly, a dict with no float among its values by orjson (sorted keys, compact: the same bytes for
    strings, integers, booleans, null and lists of them; it writes some float exponents differently and
    refuses integers beyond 64 bits, which go to the standard library)."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is dict and float not in map(type, value.values()):  # map and `in` run in C, not a generator
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            pass
    return _CANONICAL_JSON.encode(value)


class RecordLines:
    """``_line(record)`` for canonical records, byte for byte, with the parts that records of one item share
    (the very same objects: ``selectors_records``) encoded once: the prompt and the responses are most of
    a record's text. Compact JSON of a value reads the same wherever it is nested, so the record's line is
    its parts' lines joined under its sorted keys. The judgment, lineage and round parts hold no floats
    below their top level (ids, indexes, strings), which ``_compact`` relies on."""

    KEYS = ("campaign_id", "item", "judgment", "lineage", "prompt", "responses", "round", "schema", "split")
    SHARED = frozenset({"item", "prompt", "responses"})

    def __init__(self):
        self.memo: dict[str, tuple[object, str]] = {}

    def __call__(self, record: dict) -> bytes:
        if record.keys() != set(self.KEYS):
            return _line(record)
        encode, memo, parts = _CANONICAL_JSON.encode, self.memo, []
        for key in self.KEYS:
            value = record[key]
            if key in self.SHARED:
                seen = memo.get(key)
                if seen is None or seen[0] is not value:  # held here, so an id can't be reused meanwhile
                    seen = memo[key] = (value, encode(value))
                parts.append(f'"{key}":{seen[1]}')
            else:
                parts.append(f'"{key}":{_compact(value)}')
        return ("{" + ",".join(parts) + "}\n").encode()


@transaction.atomic
def snapshot_create(*, campaign: Campaign, created_by: AbstractBaseUser | None, round_ids: list[int] | None = None,
                    filters: dict | None = None, aggregation: str = "none", split_seed: int = 0,
                    split_ratios: Sequence[float] = (0.8, 0.1, 0.1), pii_policy: dict | None = None) -> Snapshot:
    """Freeze the campaign's judgments (in ``round_ids``, passing ``filters``) as a snapshot; see the module
    docstring for the hash and the split rule. ``pii_policy`` None takes the campaign's own policy."""
    rounds, filters, ratios = _check_inputs(campaign, round_ids, filters, aggregation, split_seed, split_ratios)
    policy = policy_for(campaign=campaign, override=pii_policy)
    inputs = {"campaign_id": campaign.pk, "round_ids": rounds, "filters": filters, "aggregation": aggregation,
              "split": {"rule": "sha256(seed:prompt_content_hash) bucket; import-fixed splits kept",
                        "seed": split_seed, "ratios": list(ratios)},
              "pii_policy": policy.manifest()}
    hasher = hashlib.sha256(_line(inputs))
    snapshot = Snapshot.objects.create(campaign=campaign, content_hash="", manifest={}, created_by=created_by)
    judgments = 0
    members: list[tuple] = []
    splits: dict[ItemContext, str] = {}
    line = RecordLines()
    bias = gov.BiasReport()
    qs = gov.judgments_for_snapshot(campaign=campaign, round_ids=rounds, filters=filters)
    # Memory stays flat: records are hashed as they come, a prompt's split is computed once per item and
    # batch, and the per-prompt counts come from SQL at the end.
    with gc_paused():
        for row, context in judgment_rows(qs):
            split = splits.get(context)
            if split is None:
                split = splits[context] = context.prompt_split or split_for(
                    prompt_hash=context.prompt["content_hash"], seed=split_seed, ratios=ratios)
            record = canonical_record(row, context, split=split, key=policy.key)
            bias.add(record)
            hasher.update(line(record))
            members.append((snapshot.pk, row["id"], context.prompt["id"], row["item_id"], row["annotator_id"], split))
            judgments += 1
            if len(members) >= BATCH:
                _insert_members(members)
                splits.clear()
        _insert_members(members)
    if connection.vendor == "postgresql" and judgments >= ANALYZE_AFTER:
        # Fresh statistics for the exports that read these members next: with the table's old ones the
        # planner took a nested loop over a million members for a handful, five times slower than a hash join.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {SnapshotMember._meta.db_table}")
    content_hash = hasher.hexdigest()
    existing = Snapshot.objects.filter(campaign=campaign, content_hash=content_hash,
                                       data_deleted_at__isnull=True).exclude(pk=snapshot.pk).first()
    if existing is not None:
        snapshot.delete()
        return existing
    return _finish(snapshot, content_hash, inputs, judgments, bias.result(), created_by)


MEMBER_COLUMNS = ("snapshot_id", "judgment_id", "prompt_id", "item_id", "annotator_id", "split")


def _insert_members(members: list[tuple]) -> None:
    """Write (and clear) a batch of member rows: COPY on PostgreSQL (model instances and an INSERT with
    five parameters per row cost more than the whole record), bulk_create elsewhere."""
    if not members:
        return
    if connection.vendor == "postgresql":
        sql = f"COPY {SnapshotMember._meta.db_table} ({', '.join(MEMBER_COLUMNS)}) FROM STDIN"
        with connection.cursor() as cursor, cursor.copy(sql) as copy:
            for member in members:
                copy.write_row(member)
    else:
        SnapshotMember.objects.bulk_create([SnapshotMember(**dict(zip(MEMBER_COLUMNS, m, strict=True)))
                                            for m in members])
    members.clear()


def _counts(snapshot: Snapshot) -> dict:
    members = SnapshotMember.objects.filter(snapshot=snapshot)
    by_split = dict(members.values_list("split").annotate(n=Count("id")).values_list("split", "n"))
    prompts = dict(members.values_list("split").annotate(n=Count("prompt_id", distinct=True)).values_list("split", "n"))
    fixed = Prompt.objects.filter(pk__in=members.values("prompt_id")).exclude(split="").count()
    return {"judgments": sum(by_split.values()), "prompts": sum(prompts.values()), "prompts_by_split": prompts,
            "judgments_by_split": by_split, "prompts_with_import_fixed_split": fixed,
            "annotators": members.exclude(annotator_id=None).values("annotator_id").distinct().count()}


def _agreement(snapshot: Snapshot, inputs: dict) -> dict:
    """Human agreement over the snapshot's rounds (one round, or the campaign when it spans several): the
    ceiling a reward model trained on this data can be expected to reach. Overall figures only, no annotator
    names: the manifest travels with the data."""
    rounds = inputs.get("round_ids") or []
    report = agreement_report(campaign=snapshot.campaign, round_id=rounds[0] if len(rounds) == 1 else None, n_boot=100)
    return {key: report[key] for key in ("round", "judgments", "annotators", "items_with_overlap", "outcome", "strength", "ranking")}


def _finish(snapshot: Snapshot, content_hash: str, inputs: dict, judgments: int, bias: dict, created_by) -> Snapshot:
    snapshot.content_hash = content_hash
    snapshot.records_count = judgments
    snapshot.manifest = {
        **inputs,
        "content_hash": content_hash,
        "campaign": {"id": snapshot.campaign_id, "name": snapshot.campaign.name},
        "counts": _counts(snapshot),
        "created_by": created_by.get_username() if created_by else None,
        "created_at": timezone.now().isoformat(),
        "bias": bias,
        "agreement": _agreement(snapshot, inputs),
    }
    snapshot.save(update_fields=["content_hash", "records_count", "manifest"])
    audit_record(action="snapshot.created", actor=created_by, campaign_id=snapshot.campaign_id, object_type="snapshot",
                 object_id=snapshot.pk, counts=snapshot.manifest["counts"], details={"content_hash": content_hash})
    return snapshot


# --- export jobs ------------------------------------------------------------------------------------------


def export_path(job_id: int) -> Path:
    return Path(settings.STORAGE_DIR) / "exports" / str(job_id)


@transaction.atomic
def export_job_create(*, campaign: Campaign, created_by: AbstractBaseUser | None, format: str,
                      options: dict | None = None, snapshot: Snapshot | None = None, split: str = "") -> ExportJob:
    """Queue an export of ``snapshot`` in ``format``; a worker on the ``cpu`` queue writes it once this
    transaction commits. With ``snapshot`` None the job is queued without one and the worker first builds a
    snapshot of the whole campaign (every export references one): that takes minutes on a large campaign, far
    too long for a request. Format, options and split are checked here, so bad input still fails at once."""
    from ..tasks import export_run

    options = {str(k): str(v) for k, v in (options or {}).items()}
    record_exporter_get(format, options)  # a bad format or option fails here, with its name
    if split and split not in SPLITS:
        raise ValidationError(f"split must be one of {list(SPLITS)} or empty (got {split!r})", field="split")
    if snapshot is not None and snapshot.campaign_id != campaign.pk:
        raise ValidationError(f"snapshot {snapshot.pk} is not a snapshot of campaign {campaign.pk}", field="snapshot")
    job = ExportJob.objects.create(campaign=campaign, snapshot=snapshot, format=format, options=options, split=split,
                                   created_by=created_by)
    transaction.on_commit(lambda: export_run.delay(job.pk))
    return job


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Build the job's snapshot if it has none (``_export_snapshot``), then write its file: to a temporary file
    beside the target, renamed into place when complete, its sha256 taken on the way. Idempotent on the job
    id: a done or failed job is left alone; a job found running (its worker died; acks_late delivered it
    again) is written again from the start, to the same content. The file is written outside a transaction:
    a long export must not hold one open."""
    claimed = ExportJob.objects.filter(pk=job_id, status__in=[ExportJob.Status.QUEUED, ExportJob.Status.RUNNING]).update(
        status=ExportJob.Status.RUNNING, started_at=timezone.now())
    if not claimed:
        return None
    job = ExportJob.objects.select_related("campaign", "created_by").get(pk=job_id)
    try:
        if job.snapshot_id is None:
            _export_snapshot(job)
        job = ExportJob.objects.select_related("campaign", "snapshot__campaign", "created_by").get(pk=job_id)
        target = export_path(job.pk)
        target.parent.mkdir(parents=True, exist_ok=True)
        report = PiiReport()
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{job.pk}-", suffix=".part")
        try:
            exporter = record_exporter_get(job.format, job.options)
            workers = export_workers(records=job.snapshot.records_count, exporter=exporter)
            with os.fdopen(fd, "wb") as fh, gc_paused():
                writer = _HashingWriter(fh, hashlib.sha256())
                rows = export_write(snapshot=job.snapshot, split=job.split or None, fh=writer, workers=workers,
                                    make_exporter=lambda: record_exporter_get(job.format, job.options),
                                    report=report, parts_at=Path(partial))
            os.replace(partial, target)
        finally:
            Path(partial).unlink(missing_ok=True)
    except Exception as exc:
        ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.FAILED, error=f"{type(exc).__name__}: {exc}",
                                                   finished_at=timezone.now())
        raise
    return _export_done(job, exporter, writer.digest.hexdigest(), writer.size, rows, report)


@transaction.atomic
def _export_snapshot(job: ExportJob) -> None:
    """Build and attach a snapshot of the job's whole campaign, in one transaction with the attachment.

    The conditional UPDATE first takes the job's row lock and matches only while no snapshot is attached: a
    second delivery of the task (acks_late) waits on that lock (already at its claim) for the first to
    commit, then matches nothing and builds nothing. A worker that dies mid-build rolls the whole transaction back (snapshot, members, audit
    event), so the next delivery starts clean. snapshot_create's own transaction nests in this one (a
    savepoint), which it already held for the whole build: no longer a transaction than before."""
    if not ExportJob.objects.filter(pk=job.pk, snapshot__isnull=True).update(status=ExportJob.Status.RUNNING):
        return
    snapshot = snapshot_create(campaign=job.campaign, created_by=job.created_by)
    ExportJob.objects.filter(pk=job.pk).update(snapshot=snapshot)


@transaction.atomic
def _export_done(job: ExportJob, exporter, sha256: str, size: int, rows: int, report: PiiReport) -> ExportJob:
    name = f"{slugify(job.campaign.name) or 'campaign'}-{job.campaign_id}-snapshot{job.snapshot_id}-{job.format}"
    job.status, job.finished_at, job.sha256, job.size_bytes, job.records = (
        ExportJob.Status.DONE, timezone.now(), sha256, size, rows)
    job.file_name = f"{name}{'-' + job.split if job.split else ''}.{exporter.extension}"
    job.pii_report = report.as_dict()
    job.error = ""
    job.save()
    audit_record(action="data.exported", actor=job.created_by, campaign_id=job.campaign_id, object_type="export",
                 object_id=job.pk, counts={"rows": rows, "bytes": size, "pii_rejected": report.records_rejected},
                 details={"format": job.format, "snapshot": job.snapshot_id, "sha256": sha256, "split": job.split})
    return job


class _HashingWriter:
    """A binary file that hashes and counts what passes through it."""

    def __init__(self, fh, digest):
        self.fh, self.digest, self.size = fh, digest, 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()

    def append_file(self, path: Path, start: int, size: int) -> None:
        """Append ``size`` bytes of ``path`` from ``start`` (a part of the export): copied by the kernel
        rather than written through Python, and hashed meanwhile by a thread reading them (both release the
        GIL): joining the 1.4 GB of a 1M-judgment TRL export took 1.0-1.4 s so, 3.4 s read, hashed and
        written in turn."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            hashed = pool.submit(self._hash_range, path, start, size)
            with open(path, "rb") as src:
                files.copy_range(src, self.fh, start, size)
            hashed.result()
        self.size += size

    def _hash_range(self, path: Path, start: int, size: int) -> None:
        with open(path, "rb") as src:
            src.seek(start)
            block = memoryview(bytearray(files.BLOCK))
            while size > 0:
                read = src.readinto(block[: min(size, files.BLOCK)])
                if not read:
                    raise OSError(f"{path} ended {size} bytes early")
                self.digest.update(block[:read])
                size -= read

    def tell(self) -> int:
        return self.size

    @property
    def closed(self) -> bool:
        return self.fh.closed
