"""Formats both ways: canonical -> format -> import -> canonical keeps every field the format carries."""
from __future__ import annotations

import json

import pytest

from labeling.errors import ValidationError
from labeling.exporters import record_exporter_get
from labeling.importers import ImportRejected, import_file
from labeling.importers.canonical import lossless_import
from labeling.models import ComparisonItem, Judgment, Prompt
from labeling.selectors_governance import snapshot_records
from labeling.services.items import ItemSpec, PromptSpec, ResponseSpec, items_create
from labeling.services.snapshots import snapshot_create
from tests.factories import CampaignFactory, member

pytestmark = pytest.mark.django_db

HH = "\n\nHuman: How do I boil an egg?\n\nAssistant: Do you want it soft or hard?\n\nHuman: Hard\n\nAssistant:"
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a prime number."}]


def _item(campaign, prompt: PromptSpec, texts, **meta):
    spec = ItemSpec(prompt=prompt, responses=[ResponseSpec(text=t, model_name="m-1", generation_params={"t": 0.7})
                                              for t in texts], metadata=meta)
    items_create(campaign=campaign, round=campaign.rounds.first(), specs=[spec])
    item = ComparisonItem.objects.filter(campaign=campaign).order_by("-id").first()
    return item, [link.response for link in item.item_responses.order_by("position")]


def _judge(item, responses, who, ranking, *, winner=None, **kw):
    ids = [[responses[i].pk for i in group] for group in ranking]
    return Judgment.objects.create(
        campaign=item.campaign, round=item.round, item=item, annotator=who, kind="pairwise" if len(responses) == 2
        else "ranking", winner=responses[winner] if winner is not None else None, ranking=ids,
        shown_order=[r.pk for r in reversed(responses)], **kw)


@pytest.fixture
def source():
    campaign = CampaignFactory(ranking_enabled=True)
    ann = member(campaign)
    hh, r = _item(campaign, PromptSpec(text=HH, metadata={"language": "en", "topic": "cooking"}),
                  [" About ten minutes.", " Microwave it."])
    _judge(hh, r, ann, [[0], [1]], winner=0, strength=3, rationale="safer", time_spent_ms=4200)
    chat, r = _item(campaign, PromptSpec(messages=CHAT, external_id="ext-7"), ["7", "Nine."], origin="unit")
    _judge(chat, r, ann, [[0], [1]], winner=0, strength=1, time_spent_ms=900)
    plain, r = _item(campaign, PromptSpec(text="Summarise: cats sleep a lot."), ["Cats nap.", "Dogs bark."])
    _judge(plain, r, ann, [[1], [0]], winner=1, rationale="on topic")
    tie, r = _item(campaign, PromptSpec(text="Say hi."), ["Hi", "Hello"])
    _judge(tie, r, ann, [[0, 1]], tie=True)
    bad, r = _item(campaign, PromptSpec(text="2+2?"), ["5", "22"])
    _judge(bad, r, ann, [], both_bad=True)
    ranked, r = _item(campaign, PromptSpec(text="Rank these fruits by sweetness."), ["Mango", "Lemon", "Apple"])
    _judge(ranked, r, ann, [[0], [2], [1]], rationale="by taste")
    return campaign, snapshot_create(campaign=campaign, created_by=None)


def _export(snapshot, fmt, tmp_path, **options):
    exporter = record_exporter_get(fmt, options)
    path = tmp_path / f"{fmt}.{exporter.extension}"
    with path.open("wb") as fh:
        exporter.write(snapshot_records(snapshot=snapshot), fh)
    return path


def _rows(path):
    text = path.read_text()
    return json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines()]


def _comparable(record: dict) -> str:
    """A record without what a round trip re-mints: database ids, times, lineage."""
    j = {k: v for k, v in record["judgment"].items() if k not in ("id", "created_at", "source", "source_name")}
    prompt = {k: v for k, v in record["prompt"].items() if k != "id"}
    responses = [{k: v for k, v in r.items() if k != "id"} for r in record["responses"]]
    return json.dumps({"prompt": prompt, "responses": responses, "judgment": j, "split": record["split"],
                       "item": {"kind": record["item"]["kind"], "metadata": record["item"]["metadata"]}}, sort_keys=True)


@pytest.mark.parametrize("fmt", ["canonical", "parquet", "hf-datasets"])
def test_lossless_formats_round_trip_every_field(source, fmt, tmp_path):
    campaign, snapshot = source
    before = sorted(_comparable(r) for r in snapshot_records(snapshot=snapshot))
    path = _export(snapshot, fmt, tmp_path)
    target = CampaignFactory(ranking_enabled=True)
    report = lossless_import(campaign=target, path=path, fmt=fmt)
    assert report.judgments_created == 6 and report.items_created == 6
    after = sorted(_comparable(r) for r in snapshot_records(snapshot=snapshot_create(campaign=target, created_by=None)))
    assert after == before


def test_canonical_keeps_every_judgment_of_an_item(source, tmp_path):
    campaign, _ = source
    item = ComparisonItem.objects.filter(campaign=campaign, prompt__text="Say hi.").get()
    responses = [link.response for link in item.item_responses.order_by("position")]
    _judge(item, responses, member(campaign), [[1], [0]], winner=1, strength=2)
    snapshot = snapshot_create(campaign=campaign, created_by=None)
    target = CampaignFactory(ranking_enabled=True)
    report = lossless_import(campaign=target, path=_export(snapshot, "canonical", tmp_path), fmt="canonical")
    assert (report.items_created, report.judgments_created) == (6, 7)
    assert Judgment.objects.filter(item__campaign=target, item__prompt__text="Say hi.").count() == 2


@pytest.mark.parametrize("fmt,options", [
    ("hh-rlhf", {}), ("openai-dpo", {}), ("label-studio", {}), ("argilla", {}),
    ("trl-preference", {"style": "standard"}), ("trl-preference", {"style": "conversational"}),
])
def test_item_formats_round_trip_what_they_carry(source, fmt, options, tmp_path):
    campaign, snapshot = source
    path = _export(snapshot, fmt, tmp_path, **options)
    rows = _rows(path)
    assert rows, f"{fmt} wrote nothing"
    target = CampaignFactory(ranking_enabled=True)
    import_file(campaign=target, path=path, fmt="trl" if fmt == "trl-preference" else fmt)
    again = _rows(_export(snapshot_create(campaign=target, created_by=None), fmt, tmp_path / "..", **options))
    def comparable(rows):  # Label Studio's meta holds the source database's ids
        return sorted(json.dumps({k: v for k, v in r.items() if k != "meta"}, sort_keys=True) for r in rows)

    assert comparable(again) == comparable(rows)


def test_answer_formats_import_prompts_with_the_answer(source, tmp_path):
    _, snapshot = source
    for fmt in ("openai-sft", "bedrock", "bedrock-conversation"):
        path = _export(snapshot, fmt, tmp_path)
        rows = _rows(path)
        target = CampaignFactory()
        import_file(campaign=target, path=path, fmt=fmt)
        rebuilt = []
        for p in Prompt.objects.filter(campaign=target).order_by("id"):
            answer = p.metadata["completion"]
            if fmt == "openai-sft":
                rebuilt.append({"messages": [*p.messages, {"role": "assistant", "content": answer}]})
            elif fmt == "bedrock":
                rebuilt.append({"prompt": p.text, "completion": answer})
            else:
                system = [{"text": m["content"]} for m in p.messages if m["role"] == "system"]
                turns = [{"role": m["role"], "content": [{"text": m["content"]}]} for m in p.messages
                         if m["role"] != "system"] + [{"role": "assistant", "content": [{"text": answer}]}]
                rebuilt.append({"schemaVersion": "bedrock-conversation-2024", "messages": turns,
                                **({"system": system} if system else {})})
        assert sorted(json.dumps(r, sort_keys=True) for r in rebuilt) == sorted(json.dumps(r, sort_keys=True) for r in rows), fmt


def test_export_only_formats(source, tmp_path):
    _, snapshot = source
    kto = _rows(_export(snapshot, "trl-kto", tmp_path))
    assert len(kto) == 6 and [r["label"] for r in kto[:2]] == [True, False]  # 3 decisive pairs, 2 rows each
    pretraining = _rows(_export(snapshot, "bedrock-pretraining", tmp_path))
    assert pretraining[0]["input"] == HH + " About ten minutes."


def test_bad_canonical_file_names_lines_and_imports_nothing(source, tmp_path):
    _, snapshot = source
    lines = _export(snapshot, "canonical", tmp_path).read_text().splitlines()
    broken = json.loads(lines[1])
    broken["judgment"]["winner"] = 5
    lines[1] = json.dumps(broken)
    lines[3] = "{not json"
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    target = CampaignFactory()
    with pytest.raises(ImportRejected) as err:
        lossless_import(campaign=target, path=path, fmt="canonical")
    errors = err.value.details["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [(2, "judgment.winner"), (4, "record")]
    assert not Prompt.objects.filter(campaign=target).exists()
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValidationError, match="not a Parquet file"):
        lossless_import(campaign=target, path=tmp_path / "x.parquet", fmt="parquet")


def _carried(records, fmt: str) -> list[str]:
    """What Label Studio / Argilla carry of each judgment, with who gave it: the annotator's pseudonym, or for
    a judgment imported from ``fmt`` the user its source name holds."""
    out = []
    for r in records:
        j = r["judgment"]
        who = j["annotator"] or j["source_name"].removeprefix(f"{fmt}:")
        carried = {"prompt": r["prompt"]["text"], "responses": [x["text"] for x in r["responses"]], "who": who,
                   "kind": j["kind"], "winner": j["winner"], "tie": j["tie"], "ranking": j["ranking"]}
        if fmt == "label-studio":  # lead_time; Argilla has no time
            carried["time_spent_ms"] = j["time_spent_ms"]
        out.append(json.dumps(carried, sort_keys=True))
    return sorted(out)


@pytest.mark.parametrize("fmt", ["label-studio", "argilla"])
def test_annotation_tool_formats_keep_every_judgment_of_an_overlap_campaign(fmt, tmp_path):
    campaign = CampaignFactory(ranking_enabled=True, overlap=3)
    people = [member(campaign) for _ in range(3)]
    pair, r = _item(campaign, PromptSpec(text="Say hi."), ["Hi", "Hello"])
    for who, winner, ms in zip(people, [0, 0, 1], [1500, 2200, None], strict=True):  # two agree
        _judge(pair, r, who, [[winner], [1 - winner]], winner=winner, time_spent_ms=ms)
    ranked, r = _item(campaign, PromptSpec(text="Rank these fruits by sweetness."), ["Mango", "Lemon", "Apple"])
    for who, ranking in zip(people, [[[0], [2], [1]], [[2], [0], [1]], [[0], [2], [1]]], strict=True):
        _judge(ranked, r, who, ranking, time_spent_ms=3000)
    # canonical -> a campaign whose judgments name their annotators by pseudonym -> fmt -> import -> canonical
    middle = CampaignFactory(ranking_enabled=True)
    lossless_import(campaign=middle, path=_export(snapshot_create(campaign=campaign, created_by=None), "canonical",
                                                   tmp_path), fmt="canonical")
    before = list(snapshot_records(snapshot=snapshot_create(campaign=middle, created_by=None)))
    path = _export(snapshot_create(campaign=middle, created_by=None), fmt, tmp_path)
    rows = _rows(path)
    assert len(rows) == 2  # one task / record per item, every judgment in it
    target = CampaignFactory(ranking_enabled=True)
    report = import_file(campaign=target, path=path, fmt=fmt)
    assert (report.items_created, report.judgments_created) == (2, 6)
    after = list(snapshot_records(snapshot=snapshot_create(campaign=target, created_by=None)))
    assert len(before) == len(after) == 6 and len({r["judgment"]["annotator"] for r in before}) == 3
    assert _carried(after, fmt) == _carried(before, fmt)
    assert {r["judgment"]["source_name"] for r in after} == {f"{fmt}:{r['judgment']['annotator']}" for r in before}
