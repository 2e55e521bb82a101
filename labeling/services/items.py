"""Creating prompts, responses and comparison items in bulk: used by importers, by the RLHF side when a
policy generates a round, and by the demo seed. Content hashes dedupe: a prompt already in the campaign is
reused, an item already in the campaign (same prompt, same responses in any order) is reported as a
duplicate and not created again."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from django.db import transaction

from ..errors import ValidationError
from ..models import Assignment, Campaign, ComparisonItem, ItemResponse, Judgment, Prompt, Response, Round

BATCH = 500


@dataclass
class PromptSpec:
    text: str = ""
    messages: list[dict] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    external_id: str = ""
    split: str = ""

    @property
    def kind(self) -> str:
        return Prompt.Kind.CHAT if self.messages else Prompt.Kind.TEXT


@dataclass
class ResponseSpec:
    text: str
    model_name: str = Response.IMPORTED
    generation_params: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


@dataclass
class LabelSpec:
    """A known preference that comes with an imported item, stored as a judgment by ``source_name``.
    ``ranking`` holds tie groups of indexes into the item's responses, best first."""

    ranking: list[list[int]]
    source_name: str
    strength: int | None = None
    both_bad: bool = False
    time_spent_ms: int | None = None  # how long the annotator took, when the file says


@dataclass
class ItemSpec:
    """An item to create. ``labels`` are its known preferences, one imported judgment each (an annotation
    tool's file may hold several annotators' answers); ``label`` is the one-label shorthand most formats use."""

    prompt: PromptSpec
    responses: list[ResponseSpec]
    label: LabelSpec | None = None
    metadata: dict = field(default_factory=dict)
    line: int | None = None  # where it came from, for reports
    labels: list[LabelSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.label is not None:
            self.labels = [self.label, *self.labels]
            self.label = None  # one place to read them: ``labels``


@dataclass
class CreateReport:
    prompts_created: int = 0
    prompts_reused: int = 0
    items_created: int = 0
    judgments_created: int = 0
    duplicates: list[dict] = field(default_factory=list)
    _prompts_seen: set[str] = field(default_factory=set, repr=False)  # counted once per call, not per chunk

    def as_dict(self) -> dict:
        return {
            "prompts_created": self.prompts_created,
            "prompts_reused": self.prompts_reused,
            "items_created": self.items_created,
            "judgments_created": self.judgments_created,
            "duplicates": len(self.duplicates),
            "duplicate_lines": [d["line"] for d in self.duplicates[:100]],
        }


def _sha(data: object) -> str:
    return hashlib.sha256(json.dumps(data, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def prompt_hash(spec: PromptSpec) -> str:
    return _sha({"messages": spec.messages} if spec.messages else {"text": spec.text})


def response_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def item_hash(p_hash: str, response_texts: Iterable[str]) -> str:
    return _sha([p_hash, sorted(response_hash(t) for t in response_texts)])


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    it = iter(iterable)
    while chunk := list(islice(it, size)):
        yield chunk


def _prompts_for(campaign: Campaign, specs: list[PromptSpec], report: CreateReport) -> dict[str, Prompt]:
    """Existing prompts by hash, creating the missing ones."""
    hashes = {prompt_hash(s): s for s in specs}
    found = {p.content_hash: p for p in Prompt.objects.filter(campaign=campaign, content_hash__in=list(hashes))}
    report.prompts_reused += sum(1 for h in hashes if h in found and h not in report._prompts_seen)
    report._prompts_seen.update(hashes)
    new = [
        Prompt(
            campaign=campaign,
            kind=s.kind,
            text=s.text,
            messages=s.messages,
            metadata=s.metadata,
            external_id=s.external_id,
            split=s.split,
            content_hash=h,
        )
        for h, s in hashes.items()
        if h not in found
    ]
    for prompt in Prompt.objects.bulk_create(new):
        found[prompt.content_hash] = prompt
    report.prompts_created += len(new)
    return found


@transaction.atomic
def prompts_create(*, campaign: Campaign, specs: Iterable[PromptSpec]) -> CreateReport:
    """Add prompts (no responses yet: a policy will generate them). Prompts already there are reused."""
    report = CreateReport()
    for chunk in _chunks(specs, BATCH):
        for spec in chunk:
            _check_prompt(spec, "")
        _prompts_for(campaign, chunk, report)
    return report


def _storable(text: str, *, where: str, field: str) -> None:
    """PostgreSQL refuses NUL characters and unpaired surrogates can't be encoded: say so up front instead of
    failing at the insert (model output can contain either)."""
    if "\x00" in text:
        raise ValidationError(f"{where}{field} contains a NUL character", field=field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{where}{field} contains an unpaired surrogate (invalid Unicode)", field=field) from None


def _check_length(value: str, limit: int, *, where: str, field: str) -> None:
    if len(value) > limit:
        raise ValidationError(f"{where}{field} is longer than {limit} characters", field=field)


def _check_prompt(spec: PromptSpec, where: str) -> None:
    _check_length(spec.external_id, 200, where=where, field="external_id")
    _storable(spec.text, where=where, field="prompt")
    for message in spec.messages:
        _storable(str(message.get("content", "")), where=where, field="prompt.messages")


def _check_spec(spec: ItemSpec) -> None:
    where = f"line {spec.line}: " if spec.line else ""
    _check_prompt(spec.prompt, where)
    if len(spec.responses) < 2:
        raise ValidationError(f"{where}an item needs at least 2 responses (got {len(spec.responses)})", field="responses")
    texts = [r.text for r in spec.responses]
    if len(set(texts)) != len(texts):
        raise ValidationError(f"{where}two responses have the same text: nothing to compare", field="responses")
    for r in spec.responses:
        _storable(r.text, where=where, field="responses")
        _check_length(r.model_name, 300, where=where, field="model_name")
    for n, label in enumerate(spec.labels):
        at = f"labels[{n}]"
        _check_length(label.source_name, 200, where=where, field=f"{at}.source_name")
        flat = sorted(i for g in label.ranking for i in g)
        if flat != list(range(len(spec.responses))):
            raise ValidationError(f"{where}{at} must rank each response exactly once", field=at)


@transaction.atomic
def items_create(*, campaign: Campaign, round: Round, specs: Iterable[ItemSpec], create_slots: bool = True) -> CreateReport:
    """Create items (with their prompts, responses, ``campaign.overlap`` queue slots each, and any known labels
    as imported judgments) in batches. All or nothing: it runs in one transaction."""
    report = CreateReport()
    seen: set[str] = set()
    for chunk in _chunks(specs, BATCH):
        for spec in chunk:
            _check_spec(spec)
        prompts = _prompts_for(campaign, [s.prompt for s in chunk], report)
        keyed = []
        for spec in chunk:
            p_hash = prompt_hash(spec.prompt)
            keyed.append((spec, prompts[p_hash], item_hash(p_hash, [r.text for r in spec.responses])))
        existing = set(
            ComparisonItem.objects.filter(campaign=campaign, content_hash__in=[k for _, _, k in keyed]).values_list(
                "content_hash", flat=True
            )
        )
        fresh = []
        for spec, prompt, key in keyed:
            if key in existing or key in seen:
                report.duplicates.append({"line": spec.line, "reason": "same prompt and responses as an earlier item"})
                continue
            seen.add(key)
            fresh.append((spec, prompt, key))
        _create_batch(campaign=campaign, round=round, batch=fresh, create_slots=create_slots, report=report)
    return report


def _create_batch(*, campaign: Campaign, round: Round, batch: list, create_slots: bool, report: CreateReport) -> None:
    responses = [
        Response(
            prompt=prompt,
            round=round,
            text=r.text,
            model_name=r.model_name,
            generation_params=r.generation_params,
            metadata=r.metadata,
            content_hash=response_hash(r.text),
        )
        for spec, prompt, _ in batch
        for r in spec.responses
    ]
    Response.objects.bulk_create(responses)
    items = ComparisonItem.objects.bulk_create(
        [
            ComparisonItem(
                campaign=campaign,
                round=round,
                prompt=prompt,
                kind=ComparisonItem.Kind.PAIRWISE if len(spec.responses) == 2 else ComparisonItem.Kind.RANKING,
                content_hash=key,
                metadata=spec.metadata,
            )
            for spec, prompt, key in batch
        ]
    )
    links, slots, judgments = [], [], []
    cursor = 0
    for (spec, _prompt, _key), item in zip(batch, items, strict=True):
        own = responses[cursor : cursor + len(spec.responses)]
        cursor += len(spec.responses)
        links += [ItemResponse(item=item, response=r, position=i) for i, r in enumerate(own)]
        if create_slots:
            slots += [Assignment(campaign=campaign, round=round, item=item) for _ in range(campaign.overlap)]
        judgments += [_imported_judgment(campaign, round, item, own, label) for label in spec.labels]
    ItemResponse.objects.bulk_create(links)
    Assignment.objects.bulk_create(slots)
    Judgment.objects.bulk_create(judgments)
    if not create_slots:  # nothing left to collect for them
        ComparisonItem.objects.filter(pk__in=[i.pk for i in items]).update(status=ComparisonItem.Status.COMPLETE)
    report.items_created += len(items)
    report.judgments_created += len(judgments)


def _imported_judgment(campaign, round, item, responses: list[Response], label: LabelSpec) -> Judgment:
    ranking = [[responses[i].pk for i in group] for group in label.ranking]
    pairwise = len(responses) == 2
    winner = responses[label.ranking[0][0]] if pairwise and len(label.ranking) == 2 and not label.both_bad else None
    return Judgment(
        campaign=campaign,
        round=round,
        item=item,
        source=Judgment.Source.IMPORTED,
        source_name=label.source_name,
        kind=Judgment.Kind.PAIRWISE if pairwise else Judgment.Kind.RANKING,
        winner=winner,
        tie=len(label.ranking) == 1 and not label.both_bad,
        both_bad=label.both_bad,
        strength=label.strength if winner is not None else None,
        ranking=ranking,
        time_spent_ms=label.time_spent_ms,
        shown_order=[r.pk for r in responses],
    )
