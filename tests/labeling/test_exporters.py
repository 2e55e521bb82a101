"""The trl-preference exporter: styles, ties / both-bad, margins, ranking expansion, round trips."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling import selectors
from labeling.errors import ValidationError
from labeling.exporters import exporter_get
from labeling.importers import import_file
from labeling.models import Role, Round
from labeling.services.items import ItemSpec, LabelSpec, PromptSpec, ResponseSpec, items_create
from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput
from tests.factories import CampaignFactory, member

pytestmark = pytest.mark.django_db

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sky colour?"}]


def _export(campaign, round_ids=None, **options) -> list[dict]:
    exporter = exporter_get("trl-preference", options)
    data = b"".join(exporter.stream(selectors.judgments_for_export(campaign=campaign, round_ids=round_ids)))
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def _item(prompt: PromptSpec, texts: list[str], ranking: list[list[int]], **label) -> ItemSpec:
    return ItemSpec(
        prompt=prompt,
        responses=[ResponseSpec(text=t) for t in texts],
        label=LabelSpec(ranking=ranking, source_name="test", **label),
    )


@pytest.fixture
def judged():
    """One campaign with a judgment of each kind, in this order: a strong preference, a tie, a both-bad, a
    three-way ranking with a tie in second place, a chat-prompt preference without strength."""
    campaign = CampaignFactory()
    specs = [
        _item(PromptSpec(text="Q1"), ["good", "bad"], [[0], [1]], strength=3),
        _item(PromptSpec(text="Q2"), ["same a", "same b"], [[0, 1]]),
        _item(PromptSpec(text="Q3"), ["awful", "worse"], [[0, 1]], both_bad=True),
        _item(PromptSpec(text="Q4"), ["r0", "r1", "r2"], [[2], [0, 1]]),
        _item(PromptSpec(messages=CHAT), ["Blue.", "Green."], [[0], [1]]),
    ]
    items_create(campaign=campaign, round=campaign.rounds.get(), specs=specs)
    return campaign


def test_standard_style_writes_strings_and_renders_chat_prompts_with_the_template(judged):
    records = _export(judged)
    assert records == [
        {"prompt": "Q1", "chosen": "good", "rejected": "bad"},
        {"prompt": "Q4", "chosen": "r2", "rejected": "r0"},
        {"prompt": "Q4", "chosen": "r2", "rejected": "r1"},
        {"prompt": "\n\nSystem: Be brief.\n\nHuman: Sky colour?\n\nAssistant:", "chosen": "Blue.", "rejected": "Green."},
    ]


def test_conversational_style_writes_message_lists(judged):
    records = _export(judged, style="conversational")
    assert records[0] == {
        "prompt": [{"role": "user", "content": "Q1"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }
    assert records[-1]["prompt"] == CHAT and records[-1]["chosen"] == [{"role": "assistant", "content": "Blue."}]


def test_an_hh_transcript_prompt_becomes_turns_in_conversational_style():
    campaign = CampaignFactory()
    transcript = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Any tips?\n\nAssistant:"
    items_create(campaign=campaign, round=campaign.rounds.get(),
                 specs=[_item(PromptSpec(text=transcript), [" Drink water.", " No."], [[0], [1]])])
    [record] = _export(campaign, style="conversational")
    assert record["prompt"] == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Any tips?"},
    ]
    assert record["chosen"] == [{"role": "assistant", "content": "Drink water."}]
    assert _export(campaign)[0] == {"prompt": transcript, "chosen": " Drink water.", "rejected": " No."}


def test_ties_and_both_bad_are_dropped_unless_kept_and_then_every_record_is_marked(judged):
    assert all("label" not in r for r in _export(judged))
    records = _export(judged, ties="keep", both_bad="keep")
    assert [(r["prompt"], r["chosen"], r["rejected"], r["label"]) for r in records] == [
        ("Q1", "good", "bad", "preference"),
        ("Q2", "same a", "same b", "tie"),
        ("Q3", "awful", "worse", "both_bad"),
        ("Q4", "r2", "r0", "preference"),
        ("Q4", "r2", "r1", "preference"),
        ("Q4", "r0", "r1", "tie"),
        (records[-1]["prompt"], "Blue.", "Green.", "preference"),
    ]
    assert [r["label"] for r in _export(judged, ties="keep")] == ["preference", "tie", "preference", "preference", "tie", "preference"]


def test_margin_maps_strength_one_two_three_and_is_zero_without_one(judged):
    before = _export(judged, margin="strength", ties="keep")
    annotator = member(judged, Role.ANNOTATOR)
    judged.rounds.get().items.update(status="open")
    for strength in (1, 2):
        slot = assignment_next(user=annotator, campaign=judged)
        judgment_record(user=annotator, assignment_id=slot.pk,
                        data=JudgmentInput(winner=slot.shown_order[0], strength=strength, client_id=uuid.uuid4()))
    records = _export(judged, margin="strength", ties="keep")
    imported = {(r["chosen"], r["label"]): r["margin"] for r in before}
    assert imported[("good", "preference")] == 3.0
    assert imported[("same a", "tie")] == 0.0
    assert imported[("r2", "preference")] == 0.0  # ranking pairs have no strength
    assert imported[("Blue.", "preference")] == 0.0  # a winner without a strength
    # The two human judgments (rows sit beside their item's others: the export is in item order)
    assert sorted(r["margin"] for r in records if r not in before) == [1.0, 2.0]
    assert "margin" not in _export(judged)[0]


def test_a_ranking_expands_into_every_ordered_pair():
    campaign = CampaignFactory()
    items_create(campaign=campaign, round=campaign.rounds.get(),
                 specs=[_item(PromptSpec(text="Rank"), ["a", "b", "c", "d"], [[3], [1, 0], [2]])])
    pairs = [(r["chosen"], r["rejected"]) for r in _export(campaign)]
    assert pairs == [("d", "b"), ("d", "a"), ("d", "c"), ("b", "c"), ("a", "c")]


def test_round_filter_exports_only_that_rounds_judgments(tmp_path):
    campaign = CampaignFactory()
    first = campaign.rounds.get()
    second = Round.objects.create(campaign=campaign, number=2)
    items_create(campaign=campaign, round=first, specs=[_item(PromptSpec(text="one"), ["a", "b"], [[0], [1]])])
    items_create(campaign=campaign, round=second, specs=[_item(PromptSpec(text="two"), ["a", "b"], [[1], [0]])])
    assert [r["prompt"] for r in _export(campaign, round_ids=[second.pk])] == ["two"]
    assert [r["prompt"] for r in _export(campaign)] == ["one", "two"]


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"style": "chatml"}, "style", "style must be one of ['standard', 'conversational'] (got 'chatml')"),
        ({"ties": "yes"}, "ties", "ties must be one of ['drop', 'keep'] (got 'yes')"),
        ({"margin": "3"}, "margin", "margin must be one of ['none', 'strength'] (got '3')"),
        ({"colour": "red"}, "colour", "unknown option 'colour' for trl-preference; options: ['both_bad', 'margin', 'style', 'ties']"),
    ],
)
def test_a_bad_option_is_named(options, field, message):
    with pytest.raises(ValidationError) as caught:
        exporter_get("trl-preference", options)
    assert (caught.value.field, caught.value.message) == (field, message)


def test_streaming_reads_items_and_responses_once_as_streams_not_per_judgment():
    campaign = CampaignFactory()
    specs = [_item(PromptSpec(text=f"Q{n}"), [f"a{n}", f"b{n}"], [[0], [1]]) for n in range(60)]
    items_create(campaign=campaign, round=campaign.rounds.get(), specs=specs)
    exporter = exporter_get("trl-preference", chunk_size=20)
    with CaptureQueriesContext(connection) as queries:
        lines = b"".join(exporter.stream(selectors.judgments_for_export(campaign=campaign))).splitlines()
    assert len(lines) == 60 and json.loads(lines[59]) == {"prompt": "Q59", "chosen": "a59", "rejected": "b59"}
    # Three server-side cursors (judgments, items, responses), each declared once and read 20 rows a FETCH.
    declared = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DECLARE")]
    assert len(declared) == 3 and sum("labeling_itemresponse" in sql for sql in declared) == 1
    assert len(queries.captured_queries) <= 3 * (1 + 60 // 20 + 1 + 1) + 2  # DECLARE, FETCHes, CLOSE each


@pytest.mark.parametrize("options", [{}, {"style": "conversational", "ties": "keep", "both_bad": "keep"},
                                     {"margin": "strength", "ties": "keep"}])
def test_a_streamed_queryset_writes_what_the_judgment_instances_give(judged, options):
    """A queryset streams through plain rows; a list of judgments through model instances: one output."""
    items_create(campaign=judged, round=judged.rounds.get(), specs=[_item(
        PromptSpec(text="\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Tip?\n\nAssistant:"), [" Rest.", " No."],
        [[0], [1]], strength=2)])
    exporter = exporter_get("trl-preference", options)
    judgments = selectors.judgments_for_export(campaign=judged)
    from_rows = b"".join(exporter.stream(judgments))
    from_instances = b"".join(exporter.stream(list(judgments)))
    assert from_rows == from_instances and from_rows.count(b"\n") >= 5


def test_round_trip_a_trl_file_exports_the_records_it_imported(shared_data):
    """The real file with its odd unicode (U+FFFD on line 718): what goes in comes out, byte for byte, less
    the lines that repeat an earlier one."""
    campaign = CampaignFactory()
    path = shared_data / "ae_pairs_test.jsonl"
    report = import_file(campaign=campaign, path=path, fmt="trl")
    repeated = {d["line"] for d in report.duplicates}
    with path.open(encoding="utf-8") as fh:
        expected = [json.loads(line) for n, line in enumerate(fh, 1) if n not in repeated]
    assert "\ufffd" in json.dumps(expected[718 - 1 - sum(1 for n in repeated if n < 718)], ensure_ascii=False)
    assert len(repeated) == 5 and _export(campaign) == expected


def test_round_trip_conversational_records(tmp_path: Path):
    rows = [
        {"prompt": CHAT, "chosen": [{"role": "assistant", "content": "Blue."}], "rejected": [{"role": "assistant", "content": "Red."}]},
        {"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}],
         "rejected": [{"role": "assistant", "content": "5"}]},
    ]
    path = tmp_path / "conv.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    campaign = CampaignFactory()
    import_file(campaign=campaign, path=path, fmt="trl")
    assert _export(campaign, style="conversational") == rows


def test_export_json_is_compact_utf8_and_keeps_integers_beyond_64_bits():
    """Export rows are written by orjson, which refuses integers beyond 64 bits: free-form metadata may hold
    one, and it must come out whole (by the standard library), not fail the export or turn into a float."""
    from labeling.exporters.records import dumps

    assert dumps({"b": "café\n", "a": [1.5, None, True]}) == '{"b":"café\\n","a":[1.5,null,true]}'.encode()
    assert dumps({"b": 1, "a": 2}, sort_keys=True) == b'{"a":2,"b":1}'
    assert dumps({"n": 2**70, "m": {"z": 1, "a": 0}}, sort_keys=True) == b'{"m":{"a":0,"z":1},"n":1180591620717411303424}'
    assert json.loads(dumps({"n": -(2**80)}))["n"] == -(2**80)
