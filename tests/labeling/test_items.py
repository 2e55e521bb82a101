"""Bulk creation of prompts, responses and items (the service behind import, generation and the demo)."""
from __future__ import annotations

import pytest

from labeling.errors import ValidationError
from labeling.models import Assignment, ComparisonItem, Judgment, Prompt, Response
from labeling.services.campaigns import round_current
from labeling.services.items import (
    ItemSpec,
    LabelSpec,
    PromptSpec,
    ResponseSpec,
    items_create,
    prompts_create,
)
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def _item(prompt="Q?", responses=("a", "b"), **kw):
    return ItemSpec(prompt=PromptSpec(text=prompt), responses=[ResponseSpec(text=t) for t in responses], **kw)


def _create(campaign, specs, **kw):
    return items_create(campaign=campaign, round=round_current(campaign=campaign), specs=specs, **kw)


def test_items_get_overlap_slots_and_labels_become_imported_judgments():
    campaign = CampaignFactory(overlap=3)
    report = _create(campaign, [_item(label=LabelSpec(ranking=[[1], [0]], source_name="hh", strength=2))])
    assert report.items_created == 1 and report.judgments_created == 1
    item = ComparisonItem.objects.get()
    assert Assignment.objects.filter(item=item, state="available").count() == 3
    judgment = Judgment.objects.get()
    b = Response.objects.get(text="b")
    assert judgment.source == "imported" and judgment.source_name == "hh"
    assert judgment.winner == b and judgment.strength == 2 and judgment.ranking[0] == [b.pk]


def test_same_prompt_and_responses_in_any_order_is_a_duplicate():
    campaign = CampaignFactory()
    first = _create(campaign, [_item(responses=("x", "y"), line=1)])
    again = _create(campaign, [_item(responses=("y", "x"), line=7), _item(prompt="Other?", line=8)])
    assert first.items_created == 1 and again.items_created == 1
    assert [d["line"] for d in again.duplicates] == [7]
    assert again.prompts_reused == 1 and again.prompts_created == 1


def test_prompts_reused_counts_each_prompt_once_across_chunks():
    campaign = CampaignFactory()
    prompts_create(campaign=campaign, specs=[PromptSpec(text="shared")])
    specs = [_item(prompt="shared", responses=(f"a{i}", f"b{i}")) for i in range(1200)]  # spans three chunks
    report = _create(campaign, specs)
    assert report.prompts_reused == 1 and report.prompts_created == 0 and report.items_created == 1200
    assert Prompt.objects.count() == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_item(responses=("same", "same")), "same text"),
        (_item(responses=("only one",)), "at least 2 responses"),
        (_item(responses=("ok", "bad\x00nul")), "NUL"),
        (_item(prompt="bad \ud800 surrogate"), "surrogate"),
        (ItemSpec(prompt=PromptSpec(text="q"), responses=[ResponseSpec(text="a", model_name="m" * 301), ResponseSpec(text="b")]), "model_name"),
        (_item(label=LabelSpec(ranking=[[0]], source_name="x")), "rank each response exactly once"),
    ],
)
def test_unstorable_or_meaningless_items_are_refused_with_nothing_written(spec, message):
    campaign = CampaignFactory()
    with pytest.raises(ValidationError, match=message):
        _create(campaign, [_item(prompt="fine first"), spec])
    assert not ComparisonItem.objects.exists() and not Prompt.objects.exists()
