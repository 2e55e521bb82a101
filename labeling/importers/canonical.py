"""``canonical_import``: the platform's lossless canonical records back into a campaign, every judgment of an
item kept (``import_file`` stores one known preference per item; this keeps them all, with shown order,
strength, rationale and timing).

Read from canonical JSON lines, or through ``hf`` from Parquet or a saved Hugging Face dataset. All or
nothing, in two passes like ``import_file``: pass 1 checks every record and lists errors by line and field
(nothing is written if there is one); pass 2 writes in one transaction, a batch of lines at a time, so memory
stays flat. Items are created without queue slots (they are labelled already) and deduplicated by content.

What changes on the way: database ids are new (the file's ids are the source platform's), and judgments have
no user here: a judgment's annotator pseudonym is kept as its ``source_name`` (and shown again as
``annotator`` in canonical records, so a round trip keeps it). The record's split becomes the prompt's fixed
split, so later snapshots keep it."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from ..errors import ValidationError
from ..models import Campaign, ComparisonItem, ItemResponse, Judgment, Round
from ..services.audit import audit_record
from ..services.campaigns import round_current
from ..services.items import ItemSpec, PromptSpec, ResponseSpec, item_hash, items_create, prompt_hash
from .base import (
    Context,
    ImportRejected,
    RecordError,
    chat_prompt,
    external_id,
    metadata,
    need_object,
    split,
    storable_json,
    text,
)
from .reading import RecordReader

SCHEMA = "loopwise.judgment/1"
SOURCES = {*Judgment.Source.values, "aggregated"}
MAX_ERRORS = 100
BATCH = 500


@dataclass
class Parsed:
    spec: ItemSpec
    judgment: dict


@dataclass
class CanonicalReport:
    records: int = 0
    items_created: int = 0
    prompts_created: int = 0
    judgments_created: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"records": self.records, "items_created": self.items_created, "prompts_created": self.prompts_created,
                "judgments_created": self.judgments_created, "notes": self.notes}


def _int_list(value, where: str, n: int) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise RecordError(where, "expected a list of response indexes")
    if any(not 0 <= i < n for i in value):
        raise RecordError(where, f"indexes must be between 0 and {n - 1}")
    return value


def _judgment(raw, n: int) -> dict:
    j = need_object(raw)
    kind = j.get("kind")
    if kind not in Judgment.Kind.values:
        raise RecordError("judgment.kind", f"must be one of {Judgment.Kind.values} (got {kind!r})")
    ranking = j.get("ranking") or []
    if not isinstance(ranking, list):
        raise RecordError("judgment.ranking", "expected a list of tie groups")
    groups = [_int_list(g, f"judgment.ranking[{i}]", n) for i, g in enumerate(ranking)]
    both_bad = j.get("both_bad") is True
    if not both_bad and sorted(i for g in groups for i in g) != list(range(n)):
        raise RecordError("judgment.ranking", "must rank each response exactly once")
    winner, strength = j.get("winner"), j.get("strength")
    if winner is not None and (isinstance(winner, bool) or not isinstance(winner, int) or not 0 <= winner < n):
        raise RecordError("judgment.winner", f"must be a response index (0..{n - 1}) or null")
    if strength is not None and (winner is None or strength not in (1, 2, 3)):
        raise RecordError("judgment.strength", "must be 1, 2 or 3, and only beside a winner")
    if both_bad and winner is not None:
        raise RecordError("judgment.both_bad", "a both-bad judgment has no winner")
    time_ms = j.get("time_spent_ms")
    if time_ms is not None and (isinstance(time_ms, bool) or not isinstance(time_ms, int) or time_ms < 0):
        raise RecordError("judgment.time_spent_ms", "must be a non-negative integer or null")
    source = j.get("source", "imported")
    if source not in SOURCES:
        raise RecordError("judgment.source", f"must be one of {sorted(SOURCES)}")
    rationale = j.get("rationale") or ""
    if not isinstance(rationale, str):
        raise RecordError("judgment.rationale", "expected a string")
    who = j.get("annotator") or j.get("source_name") or ""
    if not isinstance(who, str):
        raise RecordError("judgment.annotator", "expected a string or null")
    return {"kind": kind, "ranking": groups, "both_bad": both_bad, "tie": j.get("tie") is True, "winner": winner,
            "strength": strength, "time_spent_ms": time_ms, "rationale": rationale, "source_name": who[:200],
            "source": Judgment.Source.ADJUDICATED if source == "aggregated" else source,
            "shown_order": _int_list(j.get("shown_order") or [], "judgment.shown_order", n)}


def parse_record(raw, ctx: Context) -> Parsed:
    record = need_object(raw)
    if record.get("schema") != SCHEMA:
        raise RecordError("schema", f"expected {SCHEMA!r} (got {record.get('schema')!r})")
    p = need_object(record.get("prompt"))
    if p.get("kind") == "chat":
        prompt = PromptSpec(messages=chat_prompt(p.get("messages"), "prompt.messages", ctx))
    else:
        prompt = PromptSpec(text=text(p.get("text"), "prompt.text", ctx))
    prompt.metadata = metadata(p.get("metadata") or {}, "prompt.metadata", ctx)
    prompt.external_id = external_id(p.get("external_id") or None, "prompt.external_id")
    prompt.split = split(record.get("split"), "split")
    raw_responses = record.get("responses")
    if not isinstance(raw_responses, list) or len(raw_responses) < 2:
        raise RecordError("responses", "expected a list of at least 2 responses")
    responses = []
    for i, r in enumerate(raw_responses):
        r = need_object(r)
        model = r.get("model_name") or ResponseSpec.model_name
        if not isinstance(model, str):
            raise RecordError(f"responses[{i}].model_name", "expected a string")
        responses.append(ResponseSpec(
            text=text(r.get("text"), f"responses[{i}].text", ctx), model_name=model,
            generation_params=metadata(r.get("generation_params") or {}, f"responses[{i}].generation_params", ctx),
            metadata=metadata(r.get("metadata") or {}, f"responses[{i}].metadata", ctx)))
    item = record.get("item") or {}
    item_metadata = storable_json(need_object(item).get("metadata") or {}, "item.metadata", ctx)
    return Parsed(ItemSpec(prompt=prompt, responses=responses, metadata=item_metadata),
                  _judgment(record.get("judgment"), len(responses)))


def _validate(records: Iterable[tuple[int, object]], ctx: Context) -> tuple[int, list[dict]]:
    count, errors = 0, []
    for line, raw in records:
        count += 1
        try:
            if isinstance(raw, RecordError):
                raise raw
            parse_record(raw, ctx)
        except RecordError as problem:
            errors.append({"line": line, "field": problem.field, "message": problem.message})
            if len(errors) >= MAX_ERRORS:
                break
    return count, errors


def _write_batch(campaign: Campaign, round: Round, batch: list[Parsed], report: CanonicalReport) -> None:
    created = items_create(campaign=campaign, round=round, specs=[p.spec for p in batch], create_slots=False)
    report.items_created += created.items_created
    report.prompts_created += created.prompts_created
    hashes = [item_hash(prompt_hash(p.spec.prompt), [r.text for r in p.spec.responses]) for p in batch]
    items = {i.content_hash: i for i in ComparisonItem.objects.filter(campaign=campaign, content_hash__in=hashes)}
    links = ItemResponse.objects.filter(item__in=items.values()).order_by("item_id", "position")
    by_item: dict[int, dict[str, int]] = {}
    for link in links.select_related("response"):
        by_item.setdefault(link.item_id, {})[link.response.text] = link.response_id
    judgments = []
    for parsed, key in zip(batch, hashes, strict=True):
        item = items[key]
        # The stored item may list the same responses in another order (it was created by an earlier line).
        ids = [by_item[item.pk][r.text] for r in parsed.spec.responses]
        j = parsed.judgment
        judgments.append(Judgment(
            campaign=campaign, round_id=item.round_id, item=item, source=j["source"], source_name=j["source_name"],
            kind=j["kind"], winner_id=ids[j["winner"]] if j["winner"] is not None else None, tie=j["tie"],
            both_bad=j["both_bad"], strength=j["strength"], ranking=[[ids[i] for i in g] for g in j["ranking"]],
            rationale=j["rationale"], time_spent_ms=j["time_spent_ms"], shown_order=[ids[i] for i in j["shown_order"]]))
    Judgment.objects.bulk_create(judgments)
    report.judgments_created += len(judgments)


def _batches(records: Iterator[tuple[int, object]], ctx: Context) -> Iterator[list[Parsed]]:
    while chunk := list(islice(records, BATCH)):
        yield [parse_record(raw, ctx) for _, raw in chunk]


def jsonl_records(path: Path):
    """``(line, record)`` pairs of a JSON-lines (or JSON array) file, as ``canonical_import`` wants them."""
    from .service import _max_record_bytes

    def read() -> Iterator[tuple[int, object]]:
        for record in RecordReader(path, "json", max_record_bytes=_max_record_bytes()):
            yield record.line, record.error if record.error is not None else record.value

    return read


def canonical_import(*, campaign: Campaign, records, imported_by: AbstractBaseUser | None = None,
                     round: Round | None = None, source: str = "canonical") -> CanonicalReport:
    """Import canonical records. ``records`` is a callable giving a fresh iterator of ``(line, record)``
    (called once per pass; a record that could not be read is a ``RecordError`` in its place)."""
    ctx = Context(label_source=source)
    count, errors = _validate(records(), ctx)
    if errors:
        raise ImportRejected(f"{len(errors)} error(s) in the file; nothing was imported", field="file",
                             details={"errors": errors, "errors_truncated": len(errors) >= MAX_ERRORS})
    if count == 0:
        raise ValidationError("the file holds no records; nothing was imported", field="file")
    report = CanonicalReport(records=count)
    with transaction.atomic():
        target = round or round_current(campaign=campaign)
        for batch in _batches(records(), ctx):
            _write_batch(campaign, target, batch, report)
        audit_record(action="data.imported", actor=imported_by, campaign_id=campaign.pk, object_type="file",
                     object_id=source, counts={"records": count, "items": report.items_created,
                                               "judgments": report.judgments_created}, details={"format": source})
    return report


LOSSLESS = ("canonical", "parquet", "hf-datasets")


def lossless_import(*, campaign: Campaign, path: Path, fmt: str, imported_by: AbstractBaseUser | None = None,
                    round: Round | None = None) -> CanonicalReport:
    """Canonical records from a file in one of ``LOSSLESS`` formats (canonical JSON lines, Parquet, a saved
    Hugging Face dataset as its folder or tar archive)."""
    import tempfile

    from . import hf

    if fmt not in LOSSLESS:
        raise ValidationError(f"format must be one of {list(LOSSLESS)} (got {fmt!r})", field="format")
    if not path.exists():
        raise ValidationError(f"{path} does not exist", field="file")
    with tempfile.TemporaryDirectory() as workdir:
        if fmt == "canonical":
            records = jsonl_records(path)
        elif fmt == "parquet":
            records = hf.parquet_records(path)
        else:
            records = hf.dataset_records(path, Path(workdir))
        return canonical_import(campaign=campaign, records=records, imported_by=imported_by, round=round, source=fmt)
