"""Importers on the real data files (``shared_data``) and on small made-up files for each kind of bad record."""
from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from django.db.models import Prefetch

from labeling.errors import TooLarge, ValidationError
from labeling.importers import ImportRejected, import_file
from labeling.importers.reading import RecordReader
from labeling.models import ComparisonItem, ItemResponse, Judgment, Prompt, Response, Round
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

HH_UNSPLITTABLE = [87, 517, 926, 1104, 1255, 1689, 1951, 1953, 2037]


def _lines(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _write(tmp_path: Path, rows: list, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _items(campaign) -> list[tuple]:
    """(prompt text or messages, [response texts in canonical order]) per item, in creation order."""
    items = ComparisonItem.objects.filter(campaign=campaign).select_related("prompt").order_by("id")
    items = items.prefetch_related(Prefetch("item_responses", ItemResponse.objects.select_related("response")))
    return [
        (item.prompt.text or item.prompt.messages, [ir.response.text for ir in item.item_responses.all()])
        for item in items
    ]


def _pairs(rows: list[dict], skip: set[int] = frozenset()) -> list[tuple]:
    return [(r["prompt"], [r["chosen"], r["rejected"]]) for n, r in enumerate(rows, 1) if n not in skip]


def test_trl_file_imports_each_pair_verbatim_with_chosen_first_and_a_label(shared_data):
    campaign = CampaignFactory()
    path = shared_data / "hh_pairs_train.jsonl"
    report = import_file(campaign=campaign, path=path, fmt="trl")
    rows = _lines(path)
    assert (report.records, report.items_created, report.judgments_created, report.duplicates_count) == (1303, 1303, 1303, 0)
    # Every record as it was, among them private-use characters (line 233) and "Human:" inside responses
    # (lines 61, 79, 111). U+FFFD (ae_pairs_test line 718) goes through the export round trip test.
    assert any("\ue000" <= ch <= "\uf8ff" for ch in json.dumps(rows[233 - 1], ensure_ascii=False))
    assert all("Human:" in rows[n - 1]["chosen"] + rows[n - 1]["rejected"] for n in (61, 79, 111))
    assert _items(campaign) == _pairs(rows)
    judgment = Judgment.objects.filter(campaign=campaign).select_related("winner", "item").first()
    first = judgment.item.item_responses.order_by("position").first().response
    assert judgment.source == Judgment.Source.IMPORTED and judgment.source_name == "trl"
    assert judgment.winner == first and judgment.ranking == [[first.pk], [judgment.ranking[1][0]]]
    assert Prompt.objects.get(campaign=campaign, text=rows[0]["prompt"]).kind == Prompt.Kind.TEXT


def test_awkward_records_survive_byte_for_byte_and_duplicate_lines_are_reported(shared_data):
    campaign = CampaignFactory()
    path = shared_data / "ae_pairs_train.jsonl"
    rows = _lines(path)
    assert len(rows[169 - 1]["rejected"]) > 30_000 and "<html" in rows[359 - 1]["chosen"]
    assert all(len(rows[n - 1]["rejected"]) == 1 for n in (216, 691, 842))
    report = import_file(campaign=campaign, path=path, fmt="trl")
    dupes = {d["line"]: d["reason"] for d in report.duplicates}
    assert report.duplicates_count == 12 and report.items_created == 2988 and report.judgments_created == 2988
    assert dupes[458] == "same prompt and responses as line 24"
    assert dupes[2644] == "same prompt and responses as line 1587, with the opposite preference (this line's label is not stored)"
    assert _items(campaign) == _pairs(rows, skip=set(dupes))
    assert Response.objects.filter(prompt__campaign=campaign, text=rows[169 - 1]["rejected"]).exists()


def test_raw_hh_is_strict_by_default_and_names_each_unsplittable_line(shared_data):
    campaign = CampaignFactory()
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=campaign, path=shared_data / "raw" / "hh_harmless-base_test.jsonl", fmt="hh-rlhf")
    errors = caught.value.details["errors"]
    assert [e["line"] for e in errors] == HH_UNSPLITTABLE
    by_line = {e["line"]: e for e in errors}
    assert by_line[87]["field"] == "chosen" and "last assistant turn is empty" in by_line[87]["message"]
    assert by_line[1255]["field"] == "rejected" and "differ before their last assistant turn" in by_line[1255]["message"]
    assert "skip_unsplittable" in by_line[87]["message"]
    assert not ComparisonItem.objects.filter(campaign=campaign).exists() and not Prompt.objects.exists()


def test_raw_hh_with_skip_gives_exactly_the_cut_pair_files(shared_data):
    """The hh-rlhf split rule is the one the pair files were cut with: the same items, so re-importing the
    pair files as trl adds nothing."""
    campaign = CampaignFactory()
    report = import_file(
        campaign=campaign, path=shared_data / "raw" / "hh_harmless-base_test.jsonl", fmt="hh-rlhf", skip_unsplittable=True
    )
    assert report.skipped_count == 9 and [s["line"] for s in report.skipped] == HH_UNSPLITTABLE
    assert report.items_created == 2303 and report.judgments_created == 2303
    assert Judgment.objects.filter(campaign=campaign, source_name="hh-rlhf").count() == 2303
    again = import_file(campaign=campaign, path=shared_data / "hh_pairs_train.jsonl", fmt="trl", dry_run=True)
    assert again.items_created == 0 and again.duplicates_count == 1303
    assert again.duplicates[0]["reason"] == "same prompt and responses as one already in the campaign"


def test_llamafactory_json_array_imports_as_chat_prompts(shared_data):
    path = shared_data / "raw" / "llamafactory_dpo_en_demo.json"
    assert path.read_bytes().lstrip()[:1] == b"["  # one JSON array, not JSON lines
    campaign = CampaignFactory()
    report = import_file(campaign=campaign, path=path, fmt="sharegpt")
    rows = json.loads(path.read_text(encoding="utf-8"))
    assert report.container == "json-array" and report.records == 300 and report.items_created == 295
    # The demo file repeats five records (array elements 157, 186, 230, 248, 275, counting from 0); a
    # duplicate is named by the line its element starts on.
    starts = [n for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1) if line == "  {"]
    repeated = [157, 186, 230, 248, 275]
    assert [d["line"] for d in report.duplicates] == [starts[i] for i in repeated]
    assert report.duplicates[0]["reason"] == f"same prompt and responses as line {starts[13]}"
    roles = {"human": "user", "gpt": "assistant", "system": "system"}
    expected = [
        ([{"role": roles[t["from"]], "content": t["value"]} for t in r["conversations"]], [r["chosen"]["value"], r["rejected"]["value"]])
        for i, r in enumerate(rows)
        if i not in repeated
    ]
    assert _items(campaign) == expected
    assert Judgment.objects.filter(campaign=campaign, source_name="sharegpt").count() == 295


def test_reimporting_the_same_file_creates_nothing_new(shared_data):
    campaign = CampaignFactory()
    path = shared_data / "raw" / "llamafactory_dpo_en_demo.json"
    import_file(campaign=campaign, path=path, fmt="auto")
    counts = (Prompt.objects.count(), Response.objects.count(), ComparisonItem.objects.count(), Judgment.objects.count())
    again = import_file(campaign=campaign, path=path, fmt="auto")
    assert (again.items_created, again.judgments_created, again.prompts_created) == (0, 0, 0)
    assert again.duplicates_count == 300 and again.duplicates[0] == {
        "line": 2, "reason": "same prompt and responses as one already in the campaign"
    }
    assert (Prompt.objects.count(), Response.objects.count(), ComparisonItem.objects.count(), Judgment.objects.count()) == counts


def test_instruction_file_imports_as_prompts_keeping_the_reference_answer(shared_data):
    campaign = CampaignFactory()
    path = shared_data / "instruct_prompt_response.jsonl"
    rows = _lines(path)
    report = import_file(campaign=campaign, path=path, fmt="auto")
    assert report.format == "prompts-jsonl" and report.records == 1426
    assert report.duplicates_count == 14 and report.prompts_created == 1412 and report.items_created == 0
    assert report.duplicates[0] == {"line": 703, "reason": "same prompt as line 545"}
    img = Prompt.objects.get(campaign=campaign, text=rows[418 - 1]["prompt"])
    assert img.metadata == {"response": '<img src="url" alt="alternatetext">'} and img.kind == Prompt.Kind.TEXT
    assert not ComparisonItem.objects.exists() and not Round.objects.filter(campaign=campaign, number=2).exists()


def test_self_instruct_seed_tasks_give_the_same_prompts_as_the_instruction_file(shared_data):
    campaign = CampaignFactory()
    report = import_file(campaign=campaign, path=shared_data / "raw" / "self_instruct_seed_tasks.jsonl", fmt="auto")
    assert report.format == "self-instruct" and report.prompts_created == 175
    seed = Prompt.objects.get(campaign=campaign, external_id="seed_task_1")
    assert seed.text == "What is the relation between the given pairs?\n\nNight : Day :: Right : Left"
    assert seed.metadata["task"] == "antonym_relation" and seed.metadata["response"].startswith("The relation")
    instruct = import_file(campaign=campaign, path=shared_data / "instruct_prompt_response.jsonl", fmt="prompts-jsonl")
    existing = [d for d in instruct.duplicates if d["reason"] == "same prompt as one already in the campaign"]
    assert [d["line"] for d in existing] == list(range(1, 176))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hh_pairs_train.jsonl", "trl"),
        ("ae_pairs_test.jsonl", "trl"),
        ("raw/hh_harmless-base_test.jsonl", "hh-rlhf"),
        ("raw/llamafactory_dpo_en_demo.json", "sharegpt"),
        ("raw/self_instruct_seed_tasks.jsonl", "self-instruct"),
        ("instruct_prompt_response.jsonl", "prompts-jsonl"),
    ],
)
def test_auto_detects_each_real_file_from_its_first_record(shared_data, name, expected):
    campaign = CampaignFactory()
    report = import_file(campaign=campaign, path=shared_data / name, fmt="auto", dry_run=True, skip_unsplittable=True)
    assert report.format == expected and report.notes[0] == f"format detected as {expected} from the first record"
    assert not Prompt.objects.exists()


# --- made-up files: every kind of bad record ------------------------------------------------------------

GOOD = {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"}


def _trl_file(tmp_path: Path, bad_line: bytes, at: int = 3, total: int = 5) -> Path:
    lines = [json.dumps({**GOOD, "prompt": f"Question {n}?"}).encode() for n in range(1, total + 1)]
    lines[at - 1] = bad_line
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _row(**changes) -> bytes:
    row = {**GOOD, **changes}
    return json.dumps({k: v for k, v in row.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("bad_line", "field", "message"),
    [
        (b'{"prompt": "a", "chosen": ', "record", "not valid JSON: Expecting value at column 27"),
        (b'{"prompt": "caf\xe9", "chosen": "x", "rejected": "y"}', "record", "not valid UTF-8 (byte 16 of the line)"),
        (b"[1, 2]", "record", "expected a JSON object, got a list"),
        (_row(chosen=42), "chosen", "expected a string, got a number"),
        (_row(rejected="  \n "), "rejected", "is empty"),
        (_row(rejected=None), "rejected", "missing"),
        (_row(prompt="x" * 51), "prompt", "is 51 characters long; the limit is 50 (LOOPWISE_MAX_TEXT_CHARS)"),
        (_row(chosen="a\u0000b"), "chosen", "contains a NUL character, which cannot be stored"),
        (b'{"prompt": "p", "chosen": "\\ud800", "rejected": "r"}', "chosen", "contains an unpaired surrogate (U+D800), which cannot be stored"),
        (b'{"prompt": "p", "chosen": "c", "rejected": "r", "margin": NaN}', "record", "NaN is not valid JSON"),
        (_row(margin="big"), "margin", "expected a number, got 'big'"),
        (_row(rejected="4"), "rejected", "is the same text as chosen: there is no preference to record"),
        (
            _row(prompt=[{"role": "robot", "content": "hi"}], chosen=[{"role": "assistant", "content": "a"}],
                 rejected=[{"role": "assistant", "content": "b"}]),
            "prompt[0].role",
            "role must be one of ['assistant', 'system', 'tool', 'user'] (got 'robot')",
        ),
        (_row(prompt=[{"role": "user", "content": "hi"}]), "chosen", "the prompt is a message list, so chosen and rejected must be message lists too"),
        (_row(source={"k\u0000": 1}), "source", "contains a NUL character, which cannot be stored"),
    ],
)
def test_one_bad_line_rejects_the_file_naming_line_and_field(tmp_path, settings, bad_line, field, message):
    settings.LOOPWISE_MAX_TEXT_CHARS = 50
    campaign = CampaignFactory()
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=campaign, path=_trl_file(tmp_path, bad_line), fmt="trl")
    assert caught.value.details["errors"] == [{"line": 3, "field": field, "message": message}]
    assert caught.value.as_dict()["detail"] == "1 error(s) in the file; nothing was imported"
    assert not Prompt.objects.exists() and not ComparisonItem.objects.exists() and not Judgment.objects.exists()


def test_errors_stop_being_collected_after_one_hundred(tmp_path):
    path = _write(tmp_path, [{**GOOD, "chosen": n} for n in range(250)])
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=CampaignFactory(), path=path, fmt="trl")
    errors = caught.value.details["errors"]
    assert len(errors) == 100 and errors[-1]["line"] == 100 and caught.value.details["errors_truncated"] is True
    assert caught.value.message.startswith("100+ error(s)")


def test_a_line_over_the_record_size_limit_is_an_error_not_a_buffer(tmp_path, settings):
    settings.LOOPWISE_MAX_TEXT_CHARS = 1000  # records may then be up to 1 MiB
    path = tmp_path / "big.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"prompt": "' + b"x" * (2 << 20) + b'"}\n' + json.dumps(GOOD).encode())
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=CampaignFactory(), path=path, fmt="trl")
    [error] = caught.value.details["errors"]
    assert error["line"] == 2 and error["message"].startswith("the line is longer than")


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path, settings):
    settings.LOOPWISE_MAX_IMPORT_BYTES = 100
    with pytest.raises(TooLarge) as caught:
        import_file(campaign=CampaignFactory(), path=_trl_file(tmp_path, _row()), fmt="trl")
    assert caught.value.status_code == 413 and "LOOPWISE_MAX_IMPORT_BYTES" in caught.value.message


def test_an_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=CampaignFactory(), path=path)
    assert caught.value.details["errors"] == [{"line": 1, "field": "record", "message": "the file is empty"}]


def test_dry_run_reports_what_a_real_import_creates_and_writes_nothing(tmp_path):
    campaign = CampaignFactory()
    campaign.rounds.update(status=Round.Status.CLOSED)  # a real import would open round 2
    rows = [GOOD, {**GOOD, "prompt": "Other?"}, {**GOOD, "chosen": "5", "rejected": "4"}, {**GOOD, "rejected": "6"}]
    path = _write(tmp_path, rows)
    dry = import_file(campaign=campaign, path=path, fmt="trl", dry_run=True)
    assert not Prompt.objects.exists() and not ComparisonItem.objects.exists() and campaign.rounds.count() == 1
    real = import_file(campaign=campaign, path=path, fmt="trl")
    fields = ["records", "prompts_created", "items_created", "judgments_created", "duplicates_count", "duplicates"]
    assert {f: getattr(dry, f) for f in fields} == {f: getattr(real, f) for f in fields}
    assert (dry.items_created, dry.prompts_created, dry.duplicates_count) == (3, 2, 1)
    assert dry.duplicates == [{"line": 3, "reason": "same prompt and responses as line 1, with the opposite preference (this line's label is not stored)"}]
    assert dry.dry_run and not real.dry_run and campaign.rounds.get(number=2).items.count() == 3


def test_trl_conversational_implicit_and_margin_forms(tmp_path):
    user = [{"role": "user", "content": "Sky colour?"}]
    rows = [
        {"prompt": user, "chosen": [{"role": "assistant", "content": "Blue."}], "rejected": [{"role": "assistant", "content": "Green."}]},
        {"chosen": user + [{"role": "assistant", "content": "Blue!"}], "rejected": user + [{"role": "assistant", "content": "Red."}]},
        {"chosen": "The sky is blue.", "rejected": "The sky is green.", "margin": 1.5, "id": "x1"},
    ]
    campaign = CampaignFactory()
    report = import_file(campaign=campaign, path=_write(tmp_path, rows), fmt="trl", label_source="gpt-4 judge")
    assert _items(campaign) == [(user, ["Blue.", "Green."]), (user, ["Blue!", "Red."]), ("The sky is", [" blue.", " green."])]
    assert ComparisonItem.objects.order_by("id").last().metadata == {"margin": 1.5, "id": "x1"}
    assert report.prompts_created == 2 and set(Judgment.objects.values_list("source_name", flat=True)) == {"gpt-4 judge"}
    assert any(n.startswith("margin kept in the item's metadata") for n in report.notes)
    assert any(n.startswith("implicit prompt: taken from the leading messages") and n.endswith("(1 records)") for n in report.notes)


def test_chat_prompts_file_forms_and_their_errors(tmp_path):
    rows = [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "split": "test"},
        {"prompt": [{"role": "user", "content": "Hello"}], "id": 7, "metadata": {"topic": "greeting"}, "source": "x"},
        {"prompt": "Plain", "metadata": {"source": "kept"}, "source": "overridden"},
    ]
    campaign = CampaignFactory()
    import_file(campaign=campaign, path=_write(tmp_path, rows), fmt="prompts-jsonl")
    first, second, third = Prompt.objects.filter(campaign=campaign).order_by("id")
    assert first.kind == Prompt.Kind.CHAT and first.split == "test" and first.messages[0]["role"] == "system"
    assert second.external_id == "7" and second.metadata == {"topic": "greeting", "source": "x"}
    assert third.text == "Plain" and third.metadata == {"source": "kept"}
    bad = [{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}, {"prompt": "p", "split": "dev"}]
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=campaign, path=_write(tmp_path, bad), fmt="prompts-jsonl")
    assert [(e["line"], e["field"]) for e in caught.value.details["errors"]] == [(1, "messages"), (2, "split")]


def test_prompts_csv_maps_columns_and_numbers_records_by_their_first_line(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text('\ufeffid,prompt,topic\n1,"Two\nlines",maths\n\n2,Single,"a, b"\n3,,empty\n', encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=CampaignFactory(), path=path)
    assert caught.value.details["errors"] == [{"line": 6, "field": "prompt", "message": "is empty"}]
    path.write_text('\ufeffid,prompt,topic\n1,"Two\nlines",maths\n\n2,Single,"a, b"\n', encoding="utf-8")
    campaign = CampaignFactory()
    report = import_file(campaign=campaign, path=path)
    assert report.format == "prompts-csv" and report.container == "csv" and report.prompts_created == 2
    assert list(Prompt.objects.filter(campaign=campaign).values_list("external_id", "text", "metadata")) == [
        ("1", "Two\nlines", {"topic": "maths"}),
        ("2", "Single", {"topic": "a, b"}),
    ]
    path.write_text("question,answer\nq,a\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=campaign, path=path, fmt="prompts-csv")
    assert caught.value.details["errors"][0]["field"] == "header"


def test_a_json_array_names_the_line_of_a_bad_element(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text('[\n  {"prompt": "one"},\n  {"prompt": ""},\n  {"prompt": "three"}\n]\n', encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=CampaignFactory(), path=path)
    assert caught.value.details["errors"] == [{"line": 3, "field": "prompt", "message": "is empty"}]
    path.write_text('[{"prompt": "one"},\n {"prompt": "two"} {"prompt": "three"}]', encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=CampaignFactory(), path=path, fmt="prompts-jsonl")
    assert caught.value.details["errors"] == [
        {"line": 2, "field": "record", "message": "expected , or ] between records, got '{'"}
    ]


def test_items_go_to_the_given_open_round_and_never_to_a_closed_one(tmp_path):
    campaign = CampaignFactory()
    first = campaign.rounds.get()
    second = Round.objects.create(campaign=campaign, number=2)
    import_file(campaign=campaign, path=_write(tmp_path, [GOOD]), fmt="trl", round=first)
    assert first.items.count() == 1 and second.items.count() == 0
    first.status = Round.Status.CLOSED
    first.save()
    with pytest.raises(ValidationError) as caught:
        import_file(campaign=campaign, path=_write(tmp_path, [GOOD]), fmt="trl", round=first)
    assert caught.value.field == "round"


def test_a_100k_line_file_is_streamed_in_bounded_memory(tmp_path):
    """Pass 1 over 100,000 lines (it reads, parses and checks every record, as a real import does before
    writing) holds one small dedupe entry per record, never the file: the peak stays far below its size."""
    path = tmp_path / "big.jsonl"
    filler = "lorem ipsum dolor sit amet, " * 16
    with path.open("w", encoding="utf-8") as fh:
        for n in range(100_000):
            fh.write(json.dumps({"prompt": f"Prompt {n}: {filler}"}) + "\n")
    size = path.stat().st_size
    campaign = CampaignFactory()
    tracemalloc.start()
    try:
        report = import_file(campaign=campaign, path=path, fmt="prompts-jsonl", dry_run=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.records == 100_000 and report.prompts_created == 100_000
    assert size > 45_000_000
    assert peak < 16_000_000, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"


def test_an_empty_json_array_holds_no_records(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("[\n]\n")
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=CampaignFactory(), path=path)
    assert caught.value.details["errors"] == [{"line": 1, "field": "record", "message": "the file holds no records"}]


def test_a_large_json_array_reads_across_chunk_boundaries_like_json_load(tmp_path):
    """Multi-byte characters and elements cut at the reader's 1 MiB chunk edges come out whole, each with
    the line it starts on."""
    rows = [{"prompt": f"{n} naïve café 日本語 \U0001f600 " + "x" * (n % 700)} for n in range(6000)]
    rows[3000]["prompt"] = "é" * 1_500_000  # one element longer than a chunk
    path = tmp_path / "prompts.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n", encoding="utf-8")
    assert path.stat().st_size > 5 * (1 << 20)
    reader = RecordReader(path, "json", max_record_bytes=4 << 20)
    records = list(reader)
    assert [r.value for r in records] == json.loads(path.read_text(encoding="utf-8"))
    assert [r.line for r in records] == list(range(2, 6002)) and all(r.error is None for r in records)


def _ls_ranker(annotations: list[dict]) -> dict:
    items = [{"id": f"r{n}", "body": body} for n, body in enumerate(["Mango", "Lemon", "Apple"])]
    return {"data": {"prompt": "Rank by sweetness.", "items": items}, "annotations": annotations}


def _ls_rank(*ids: str, **extra) -> dict:
    return {"result": [{"type": "ranker", "value": {"ranker": {"rank": list(ids)}}}], **extra}


def _imported(campaign) -> list[tuple]:
    """(source name, ranking as response texts, time) of each judgment of the campaign, in id order."""
    texts = dict(Response.objects.filter(prompt__campaign=campaign).values_list("id", "text"))
    return [(j.source_name, [[texts[i] for i in g] for g in j.ranking], j.time_spent_ms)
            for j in Judgment.objects.filter(campaign=campaign).order_by("id")]


def test_label_studio_stores_each_annotation_but_cancelled_ones_and_exact_repeats(tmp_path):
    right = [{"type": "pairwise", "value": {"selected": "right"}}]
    pair = {"data": {"prompt": "Say hi.", "answer1": "Hi", "answer2": "Hello"}, "annotations": [
        {"result": right, "completed_by": 7}, {"result": right, "completed_by": 7},  # the same answer twice
        {"result": right, "completed_by": {"id": 8}}]}
    task = _ls_ranker([_ls_rank("r2", "r0", "r1", completed_by=11, lead_time=12.5),
                       _ls_rank("r1", "r0", "r2", completed_by=12, was_cancelled=True),
                       _ls_rank("r0", "r2", "r1", completed_by=13)])
    path = _write(tmp_path, [task, pair], "tasks.json")
    campaign = CampaignFactory(ranking_enabled=True)
    dry = import_file(campaign=campaign, path=path, fmt="label-studio", dry_run=True)
    report = import_file(campaign=campaign, path=path, fmt="label-studio")
    assert dry.judgments_created == report.judgments_created == 4 and report.items_created == 2
    assert _imported(campaign) == [
        ("label-studio:11", [["Apple"], ["Mango"], ["Lemon"]], 12500), ("label-studio:13", [["Mango"], ["Apple"], ["Lemon"]], None),
        ("label-studio:7", [["Hello"], ["Hi"]], None), ("label-studio:8", [["Hello"], ["Hi"]], None)]
    assert "cancelled Label Studio annotation(s) skipped (1 records)" in report.notes
    assert "an exact repeat of an annotator's annotation of the same task was stored once (1 records)" in report.notes
    assert Judgment.objects.filter(campaign=campaign, winner__text="Hello").count() == 2


def test_a_bad_label_studio_annotation_is_named_by_its_index(tmp_path):
    good = _ls_rank("r0", "r1", "r2", completed_by=1)
    rows = [_ls_ranker([good]), _ls_ranker([good, good, _ls_rank("r0", "r1", completed_by=3)]),
            _ls_ranker([good, {"result": [], "completed_by": 2}]), _ls_ranker([{**good, "lead_time": -1}])]
    campaign = CampaignFactory(ranking_enabled=True)
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=campaign, path=_write(tmp_path, rows), fmt="label-studio")
    assert caught.value.details["errors"] == [
        {"line": 2, "field": "annotations[2].result.value.ranker.rank", "message": "must list every item id exactly once"},
        {"line": 3, "field": "annotations[1].result", "message": "expected exactly one ranker result"},
        {"line": 4, "field": "annotations[0].lead_time", "message": "expected a non-negative number of seconds"},
    ]
    assert not ComparisonItem.objects.exists() and not Judgment.objects.exists()


def _argilla(*answers: dict) -> dict:
    return {"fields": {"prompt": "Pick one.", "response1": "Yes", "response2": "No", "response3": "Maybe"},
            "responses": {"preference": list(answers)}}


def _ranks(*ranks: int) -> list[dict]:
    return [{"value": f"response{n + 1}", "rank": r} for n, r in enumerate(ranks)]


def test_argilla_stores_each_submitted_response_and_counts_discarded_and_drafts(tmp_path):
    record = _argilla({"value": _ranks(1, 2, 3), "status": "submitted", "user_id": "u-a"},
                      {"value": _ranks(3, 2, 1), "status": "discarded", "user_id": "u-b"},
                      {"value": _ranks(2, 1, 1), "status": "submitted", "user_id": "u-c"},
                      {"value": _ranks(2, 1, 3), "status": "draft", "user_id": "u-d"})
    campaign = CampaignFactory(ranking_enabled=True)
    report = import_file(campaign=campaign, path=_write(tmp_path, [record]), fmt="argilla", label_source="team")
    assert report.judgments_created == 2 and report.items_created == 1
    assert _imported(campaign) == [("team:u-a", [["Yes"], ["No"], ["Maybe"]], None),
                                   ("team:u-c", [["No", "Maybe"], ["Yes"]], None)]
    assert {"discarded Argilla response(s) skipped (1 records)", "draft Argilla response(s) skipped (1 records)"} <= set(report.notes)


def test_an_argilla_record_without_submitted_responses_is_an_unlabelled_item_and_bad_ones_are_named(tmp_path):
    campaign = CampaignFactory(ranking_enabled=True)
    only_draft = _argilla({"value": _ranks(1, 2, 3), "status": "draft"})
    report = import_file(campaign=campaign, path=_write(tmp_path, [only_draft]), fmt="argilla")
    assert (report.items_created, report.judgments_created) == (1, 0)
    assert "record(s) with no submitted response imported without a label (1 records)" in report.notes
    rows = [_argilla({"value": _ranks(1, 2, 3)}, {"value": _ranks(1, 2), "status": "submitted"}),
            _argilla({"value": _ranks(1, 2, 3), "status": "pending"})]
    with pytest.raises(ImportRejected) as caught:
        import_file(campaign=campaign, path=_write(tmp_path, rows, "bad.jsonl"), fmt="argilla")
    assert caught.value.details["errors"] == [
        {"line": 1, "field": "responses.preference[1].value",
         "message": "must rank each of ['response1', 'response2', 'response3'] once"},
        {"line": 2, "field": "responses.preference[0].status",
         "message": "must be one of ['submitted', 'discarded', 'draft'] (got 'pending')"}]
    assert ComparisonItem.objects.count() == 1
