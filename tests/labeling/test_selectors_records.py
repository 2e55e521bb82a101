"""Reading judgments as plain rows beside their items' contexts (``selectors_records``)."""
from __future__ import annotations

import pytest

from labeling import selectors_records as rec
from labeling.models import ComparisonItem, ItemResponse, Judgment, Prompt
from labeling.selectors_governance import judgments_for_snapshot
from tests.factories import CampaignFactory, ItemFactory, member
from tests.labeling.test_snapshots import judge

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged():
    """Five items, two or three judgments each (a ranking item among them), judged in an order that is not
    the items' order, so judgment ids and item ids don't run together."""
    campaign = CampaignFactory()
    people = [member(campaign) for _ in range(3)]
    items = [ItemFactory(campaign=campaign) for _ in range(4)] + [ItemFactory(campaign=campaign, n_responses=3)]
    for person in people:
        for i, item in enumerate(reversed(items[:4])):
            if person is people[2] and i % 2:
                continue
            judge(item, person, winner=i % 2, strength=1 + i % 3, rationale=f"r{i}", time_spent_ms=900 + i)
    ranked = [link.response_id for link in items[4].item_responses.order_by("position")]
    for person in people[:2]:
        Judgment.objects.create(campaign=campaign, round=items[4].round, item=items[4], annotator=person, kind="ranking",
                                ranking=[[ranked[2]], [ranked[0], ranked[1]]], shown_order=ranked[::-1])
    return campaign, people, items


def test_rows_and_contexts_are_what_the_orm_gives_json_and_dates_included(judged):
    """The rows come from Django's SQL through a plain cursor and psycopg's own date loader: every value must
    still be what ``values()`` gives, or hashes and exports would change."""
    campaign, _, items = judged
    Prompt.objects.filter(pk=items[0].prompt_id).update(metadata={"topic": "é", "n": [1.5, None]})
    Judgment.objects.filter(item=items[1]).update(shown_order=[], rationale="naïve \"quoted\"\n")
    qs = judgments_for_snapshot(campaign=campaign, round_ids=None, filters={})
    rows = list(rec.judgment_rows(qs, chunk=4))  # chunks end inside items
    assert [row for row, _ in rows] == list(qs.values(*rec.ROW_FIELDS))
    assert rows[0][0]["created_at"].tzinfo is not None
    items_orm = {i["id"]: i for i in ComparisonItem.objects.filter(campaign=campaign).values(*rec.ITEM_FIELDS)}
    links = ItemResponse.objects.filter(item__campaign=campaign).order_by("item_id", "position")
    for row, context in rows:
        item = items_orm[row["item_id"]]
        assert context.item == {"id": item["id"], "kind": item["kind"], "metadata": item["metadata"]}
        assert (context.prompt["text"], context.prompt["metadata"]) == (item["prompt__text"], item["prompt__metadata"])
        expected = list(links.filter(item_id=row["item_id"]).values(*rec.RESPONSE_FIELDS))
        assert context.responses == [
            {"id": r["response_id"], "text": r["response__text"], "model_name": r["response__model_name"],
             "generation_params": r["response__generation_params"], "metadata": r["response__metadata"],
             "content_hash": r["response__content_hash"]} for r in expected]
        assert context.response_ids == [r["response_id"] for r in expected]
    assert rows[0][1].prompt["metadata"]["n"] == [1.5, None]


def test_judgments_of_one_item_share_one_context_and_its_record_parts(judged):
    campaign, _, items = judged
    qs = judgments_for_snapshot(campaign=campaign, round_ids=None, filters={})
    rows = list(rec.judgment_rows(qs))
    first = [(row, context) for row, context in rows if row["item_id"] == items[1].pk]  # judged by all three
    assert len(first) == 3 and len({id(context) for _, context in first}) == 1
    records = [rec.canonical_record(row, context, split="train", key="k") for row, context in first]
    assert records[0]["prompt"] is records[1]["prompt"] and records[0]["responses"] is records[2]["responses"]
    assert len({r["judgment"]["id"] for r in records}) == 3


def test_ranking_judgments_become_indexes_into_the_items_responses(judged):
    campaign, _, items = judged
    qs = judgments_for_snapshot(campaign=campaign, round_ids=None, filters={})
    ranked = [rec.canonical_record(row, context, split="", key="k") for row, context in rec.judgment_rows(qs)
              if row["item_id"] == items[4].pk]
    assert [r["judgment"]["ranking"] for r in ranked] == [[[2], [0, 1]]] * 2
    assert ranked[0]["judgment"]["shown_order"] == [2, 1, 0] and ranked[0]["judgment"]["winner"] is None


def test_judgments_must_come_in_item_order(judged):
    campaign, _, _ = judged
    with pytest.raises(ValueError, match="ordered by item id"):
        next(rec.judgment_rows(Judgment.objects.filter(campaign=campaign).order_by("id")))


def test_a_judgment_whose_item_is_not_read_is_skipped_not_paired_with_another(judged):
    """The items stream can miss an item the judgments name (deleted between the two reads): its judgments
    are passed over, and the merge stays in step for the items after it."""
    campaign, _, items = judged
    qs = judgments_for_snapshot(campaign=campaign, round_ids=None, filters={})
    missing = sorted(i.pk for i in items)[1]
    rows = list(rec.judgment_rows(qs, item_ids=qs.exclude(item_id=missing).order_by().values("item_id"), chunk=3))
    assert missing not in {row["item_id"] for row, _ in rows}
    assert all(context.item_id == row["item_id"] for row, context in rows)
    assert len(rows) == qs.exclude(item_id=missing).count()


@pytest.mark.parametrize("text", [
    "{}", "[]", '{"temperature": 0.7}', '{"a": [1, 2.5, null, true, false]}', '"caf\\u00e9 \\"q\\"\\n"',
    '{"big": 123456789012345678901234}', '{"edge": 18446744073709551616}', '{"neg": -9223372036854775809}',
    '{"small": 0.000000000000000000001}', '{"phone": "1234567890123456789012"}', '{"x": 2.2250738585072011e-308}',
    '{"max": 1.7976931348623157e308}', '{"tiny": 5e-324}', '{"k": 9007199254740993}', '{"dup": 1, "dup": 2}',
    '{"emoji": "\\ud83d\\ude00 \u00e9"}', '[[3], [4, 5]]',
])
def test_free_json_reads_what_the_standard_library_reads(text):
    """Free-form metadata is read by orjson where it gives the same value: integers beyond 64 bits (which
    orjson would turn into floats) and anything else it can't read go to the standard library."""
    import json

    value = rec.free_json(text)
    expected = json.loads(text)
    assert value == expected
    assert json.dumps(value) == json.dumps(expected)  # same types: an int stays an int, a float a float


def test_metadata_with_integers_beyond_64_bits_reads_exactly(judged):
    campaign, _, items = judged
    Prompt.objects.filter(pk=items[0].prompt_id).update(metadata={"id": 2**70 + 1, "f": 0.1})
    qs = judgments_for_snapshot(campaign=campaign, round_ids=None, filters={})
    prompts = {context.prompt["id"]: context.prompt["metadata"] for _, context in rec.judgment_rows(qs)}
    assert prompts[items[0].prompt_id] == {"id": 2**70 + 1, "f": 0.1}
    assert type(prompts[items[0].prompt_id]["id"]) is int
