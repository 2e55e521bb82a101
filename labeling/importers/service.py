"""``import_file``: a file of prompts or labelled pairs into a campaign, all or nothing, in two passes.

Pass 1 reads the whole file and writes nothing: it parses and checks every record, collects errors by line
and field (up to ``MAX_ERRORS``), and works out what would be created and which records duplicate an earlier
line or something already in the campaign (one query per ``BATCH`` records). A file with any error is
rejected (``ImportRejected``). Pass 2 reads it again and hands the specs to ``items_create`` /
``prompts_create`` as a generator inside one transaction, so neither pass holds the file in memory: what grows
with the file is one small dedupe entry per record. If the bytes read in pass 2 differ from pass 1's (the file
changed in between), the transaction is rolled back."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from ..errors import Conflict, TooLarge, ValidationError
from ..models import Campaign, ComparisonItem, Prompt, Round
from ..pii.campaign import pii_prepare_import
from ..services.audit import audit_record
from ..services.campaigns import round_current
from ..services.items import (
    CreateReport,
    ItemSpec,
    PromptSpec,
    item_hash,
    items_create,
    prompt_hash,
    prompts_create,
    response_hash,
)
from .base import Context, Format, ImportRejected, RecordError, format_detect, format_get
from .reading import Record, RecordReader, sniff

MAX_ERRORS = 100
MAX_LISTED = 1000  # duplicates and skipped records listed in the report (all are counted)
BATCH = 500
# A line (or array element) longer than this is an error rather than something to buffer: a record holds
# a few texts of at most LOOPWISE_MAX_TEXT_CHARS characters, each up to 6 bytes when JSON-escaped.
RECORD_BYTES_PER_TEXT_CHAR = 64


@dataclass
class ImportReport:
    """What an import did, or for a dry run would do. ``duplicates`` and ``skipped`` list up to
    ``MAX_LISTED`` records as ``{"line", "reason"}`` / ``{"line", "field", "message"}``; the counts are
    complete. ``prompts_existing``: prompts the file names that the campaign already had."""

    format: str
    container: str
    dry_run: bool
    records: int = 0
    prompts_created: int = 0
    prompts_existing: int = 0
    items_created: int = 0
    judgments_created: int = 0
    duplicates_count: int = 0
    duplicates: list[dict] = field(default_factory=list)
    skipped_count: int = 0
    skipped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Plan:
    """Pass 1's findings. Dedupe keys are the first 64 bits of the content hashes (a collision could only
    misreport a dry run: the real write dedupes on full hashes in ``items_create``)."""

    report: ImportReport
    errors: list[dict] = field(default_factory=list)
    truncated: bool = False
    campaign_empty: bool = False  # then nothing in the file can duplicate the campaign: no lookups
    seen: dict[int, int] = field(default_factory=dict)  # item / prompt key -> first line << 1 | chosen bit
    prompts: set[int] = field(default_factory=set)  # prompts of the file's new items (counted once each)
    pending: list[tuple[int, str, str, int, bool]] = field(default_factory=list)


def _short(hex_hash: str) -> int:
    return int(hex_hash[:16], 16)


def _reject(errors: list[dict], truncated: bool = False) -> ImportRejected:
    count = f"{len(errors)}+" if truncated else str(len(errors))
    return ImportRejected(
        f"{count} error(s) in the file; nothing was imported",
        field="file",
        details={"errors": errors, "errors_truncated": truncated},
    )


def _error(line: int, problem: RecordError) -> dict:
    return {"line": line, "field": problem.field, "message": problem.message}


def _resolve(fmt: str, path: Path) -> tuple[type[Format], list[str]]:
    if fmt != "auto":
        return format_get(fmt), []
    kind = sniff(path)
    if kind == "empty":
        raise _reject([{"line": 1, "field": "record", "message": "the file is empty"}])
    if kind == "csv":
        return format_get("prompts-csv"), ["format detected as prompts-csv (the file is not JSON)"]
    first: Record | None = next(iter(RecordReader(path, "json", max_record_bytes=_max_record_bytes())), None)
    if first is None:
        raise _reject([{"line": 1, "field": "record", "message": "the file holds no records"}])
    if first.error is not None:
        raise _reject([_error(first.line, first.error)])
    found = format_detect(first.value)
    if found is None:
        keys = sorted(first.value) if isinstance(first.value, dict) else type(first.value).__name__
        raise _reject([{"line": first.line, "field": "record",
                        "message": f"cannot tell the format from the first record (keys {keys}); pass a format"}])
    return found, [f"format detected as {found.name} from the first record"]


def _max_record_bytes() -> int:
    return max(1 << 20, settings.LOOPWISE_MAX_TEXT_CHARS * RECORD_BYTES_PER_TEXT_CHAR)


def _reader(cls: type[Format], path: Path, progress: Callable[[int], None] | None) -> RecordReader:
    return RecordReader(path, cls.container, max_record_bytes=_max_record_bytes(), progress=progress,
                        header_check=getattr(cls, "header_check", None))


def _parsed(fmt: Format, record: Record, ctx: Context) -> list[ItemSpec] | list[PromptSpec]:
    if record.error is not None:
        raise record.error
    specs = fmt.parse(record.value, ctx)
    for spec in specs:
        if isinstance(spec, ItemSpec):
            spec.line = record.line
    return specs


def _keys(spec: ItemSpec | PromptSpec) -> tuple[str, str, int, int]:
    """(dedupe key, prompt key, chosen bit, number of labels) of one spec."""
    if isinstance(spec, PromptSpec):
        p_hash = prompt_hash(spec)
        return p_hash, p_hash, 0, 0
    p_hash = prompt_hash(spec.prompt)
    texts = [r.text for r in spec.responses]
    # Items dedupe on their responses in any order; this bit tells which way a duplicate pair was labelled.
    bit = int(response_hash(texts[0]) < response_hash(texts[-1]))
    return item_hash(p_hash, texts), p_hash, bit, len(spec.labels)


def _flush(plan: _Plan, campaign: Campaign, produces: str) -> None:
    """Sort the pending specs into new ones and duplicates, against the campaign and earlier lines."""
    if not plan.pending:
        return
    old_prompts, old = _existing(plan, campaign, produces)
    report = plan.report
    what = "prompt and responses" if produces == "items" else "prompt"
    for line, key, p_key, bit, labelled in plan.pending:
        first = plan.seen.get(_short(key))
        if key in old or first is not None:
            if key in old:
                reason = f"same {what} as one already in the campaign"
                report.prompts_existing += produces == "prompts"
            else:
                reason = f"same {what} as line {first >> 1}"
                if produces == "items" and (first & 1) != bit:
                    reason += ", with the opposite preference (this line's label is not stored)"
            report.duplicates_count += 1
            if len(report.duplicates) < MAX_LISTED:
                report.duplicates.append({"line": line, "reason": reason})
            continue
        plan.seen[_short(key)] = line << 1 | bit
        if produces == "prompts":
            report.prompts_created += 1
            continue
        report.items_created += 1
        report.judgments_created += labelled
        p_short = _short(p_key)
        if p_short not in plan.prompts:
            plan.prompts.add(p_short)
            report.prompts_existing += p_key in old_prompts
            report.prompts_created += p_key not in old_prompts
    plan.pending.clear()


def _existing(plan: _Plan, campaign: Campaign, produces: str) -> tuple[set[str], set[str]]:
    """(prompt hashes, dedupe keys) of the pending specs that the campaign already holds."""
    if plan.campaign_empty:
        return set(), set()
    prompt_keys = {p for _, _, p, _, _ in plan.pending}
    prompts = set(Prompt.objects.filter(campaign=campaign, content_hash__in=prompt_keys).values_list("content_hash", flat=True))
    if produces == "prompts":
        return prompts, prompts
    item_keys = [k for _, k, _, _, _ in plan.pending]
    items = ComparisonItem.objects.filter(campaign=campaign, content_hash__in=item_keys)
    return prompts, set(items.values_list("content_hash", flat=True))


def _validate(*, campaign: Campaign, cls: type[Format], path: Path, ctx: Context, plan: _Plan,
              skip_unsplittable: bool, progress: Callable[[int], None] | None) -> str:
    """Pass 1. Fills ``plan``; returns the digest of the bytes read."""
    fmt, reader = cls(), _reader(cls, path, progress)
    plan.campaign_empty = not Prompt.objects.filter(campaign=campaign).exists()
    for record in reader:
        try:
            specs = _parsed(fmt, record, ctx)
        except RecordError as problem:
            if problem.skippable and skip_unsplittable:
                plan.report.skipped_count += 1
                if len(plan.report.skipped) < MAX_LISTED:
                    plan.report.skipped.append(_error(record.line, problem))
                continue
            plan.errors.append(_error(record.line, problem))
            if len(plan.errors) >= MAX_ERRORS:
                plan.truncated = True
                break
            continue
        plan.report.records += 1
        if plan.errors:
            continue  # the file is rejected anyway: only look for more errors
        plan.pending += [(record.line, *_keys(spec)) for spec in specs]
        if len(plan.pending) >= BATCH:
            _flush(plan, campaign, cls.produces)
    _flush(plan, campaign, cls.produces)
    return reader.digest


def _specs(cls: type[Format], reader: RecordReader, label_source: str, skip_unsplittable: bool) -> Iterator:
    """Pass 2's specs, parsed again from the file (pass 1 found no errors, so one now means it changed)."""
    fmt, ctx = cls(), Context(label_source=label_source)
    for record in reader:
        try:
            specs = _parsed(fmt, record, ctx)
        except RecordError as problem:
            if problem.skippable and skip_unsplittable:
                continue
            raise _changed(f" (line {record.line}, {problem.field}: {problem.message})") from None
        yield from specs


def _changed(why: str = "") -> ValidationError:
    return ValidationError(f"the file changed while it was being imported{why}; nothing was imported", field="file")


def _write(*, campaign: Campaign, cls: type[Format], path: Path, round: Round | None, label_source: str,
           skip_unsplittable: bool, digest: str, progress: Callable[[int], None] | None) -> CreateReport:
    """Pass 2: everything in one transaction."""
    reader = _reader(cls, path, progress)
    specs = _specs(cls, reader, label_source, skip_unsplittable)
    try:
        with transaction.atomic():
            if cls.produces == "items":
                created = items_create(campaign=campaign, round=round or round_current(campaign=campaign), specs=specs)
            else:
                created = prompts_create(campaign=campaign, specs=specs)
            if reader.digest != digest:
                raise _changed()
    except IntegrityError as exc:
        # Two imports of overlapping data at once: the later one's insert hits the content-hash constraint.
        raise Conflict("another import added some of the same content at the same time; run this import "
                       "again (what is already there is skipped)", field="file") from exc
    return created


def import_file(
    *,
    campaign: Campaign,
    path: Path,
    fmt: str = "auto",
    dry_run: bool = False,
    label_source: str | None = None,
    round: Round | None = None,
    skip_unsplittable: bool = False,
    progress: Callable[[int], None] | None = None,
    imported_by: AbstractBaseUser | None = None,
) -> ImportReport:
    """Import ``path`` into ``campaign`` (items go to ``round``, by default the current one, opened if none
    is). ``fmt`` is a registered format's name or ``"auto"``. Raises TooLarge over LOOPWISE_MAX_IMPORT_BYTES,
    ImportRejected (nothing written) when any record is bad. ``progress`` is called with byte counts read."""
    size = path.stat().st_size
    if size > settings.LOOPWISE_MAX_IMPORT_BYTES:
        raise TooLarge(
            f"the file is {size} bytes; the limit is {settings.LOOPWISE_MAX_IMPORT_BYTES} (LOOPWISE_MAX_IMPORT_BYTES)",
            field="file",
        )
    prepared = pii_prepare_import(campaign=campaign, path=path)  # the campaign's PII policy, or None
    if prepared is not None:
        path = prepared.path  # a redacted copy, deleted when ``prepared`` goes
    cls, notes = _resolve(fmt, path)
    if cls.produces == "items":
        _check_target(campaign, round)
    source = (label_source or "").strip() or cls.name
    ctx = Context(label_source=source)
    container = "csv" if cls.container == "csv" else ("json-array" if sniff(path) == "array" else "jsonl")
    plan = _Plan(report=ImportReport(format=cls.name, container=container, dry_run=dry_run))
    digest = _validate(campaign=campaign, cls=cls, path=path, ctx=ctx, plan=plan,
                       skip_unsplittable=skip_unsplittable, progress=progress)
    if plan.errors:
        raise _reject(plan.errors, plan.truncated)
    report = plan.report
    if report.records == 0:
        raise _reject([{"line": 1, "field": "record", "message": "the file holds no records"}])
    report.notes = notes + [f"{message} ({n} records)" for message, n in ctx.notes.items()]
    if report.skipped_count:
        report.notes.append(f"{report.skipped_count} unsplittable record(s) skipped, as asked")
    if prepared is not None:
        report.notes.append(prepared.summary())
    if cls.produces == "items" and report.judgments_created:
        report.notes.append(f"known preferences stored as imported judgments by {source!r}")
    if not dry_run:
        created = _write(campaign=campaign, cls=cls, path=path, round=round, label_source=source,
                         skip_unsplittable=skip_unsplittable, digest=digest, progress=progress)
        report.prompts_created = created.prompts_created
        report.items_created = created.items_created
        report.judgments_created = created.judgments_created
        if cls.produces == "items" and len(created.duplicates) != report.duplicates_count:
            # Another import added some of the same items between the passes: the write's view is the truth.
            report.duplicates_count = len(created.duplicates)
            report.duplicates = [{"line": d["line"], "reason": d["reason"]} for d in created.duplicates[:MAX_LISTED]]
            report.notes.append("another import added some of these items while this one ran")
        audit_record(action="data.imported", actor=imported_by, campaign_id=campaign.pk, object_type="file",
                     object_id=cls.name, counts={"records": report.records, "prompts": report.prompts_created,
                                                 "items": report.items_created, "judgments": report.judgments_created},
                     details={"format": cls.name, "pii": prepared.report.as_dict()["counts"] if prepared else {}})
    return report


def _check_target(campaign: Campaign, round: Round | None) -> None:
    if not campaign.pairwise_enabled:
        raise ValidationError(f"campaign {campaign.pk} does not take pairwise judgments: turn them on before "
                              "importing pairs", field="format")
    if round is not None and round.campaign_id != campaign.pk:
        raise ValidationError(f"round {round.pk} is not a round of campaign {campaign.pk}", field="round")
    if round is not None and round.status != Round.Status.OPEN:
        raise ValidationError(f"round {round.number} is closed: import into an open round", field="round")
