"""Import and export pages in a real Chromium against the real endpoints (see conftest): an admin creates a
campaign, has a file with a bad line refused by line and field before anything is written, imports the fixed
file after a dry run; a researcher downloads an export whose records are the campaign's judgments."""
from __future__ import annotations

import json

import pytest

from labeling.models import Campaign, ComparisonItem, Judgment, Role
from labeling.services.campaigns import campaign_create
from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput
from tests.factories import UserFactory, member

from .conftest import add_items, login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAIRS = [
    {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Lyon, I think."},
    {"prompt": "Say hello in Spanish.", "chosen": "¡Hola!", "rejected": "Bonjour."},
    {"prompt": "2 + 2 = ?", "chosen": "4", "rejected": "22"},
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def check_file(page, path, outcome):
    page.set_input_files("#import-file", str(path))
    page.click("#import-check")
    page.wait_for_selector(f"#import-outcome[data-outcome={outcome}]")


def test_admin_creates_a_campaign_and_imports_after_fixing_a_bad_line(new_page, tmp_path):
    admin = UserFactory(is_staff=True)
    page = new_page()
    login(page, admin.username)
    page.goto("/campaigns/new/")
    page.fill("#id_name", "Imported prefs")
    page.click("main button[type=submit]")
    page.wait_for_url("**/settings/")
    campaign = Campaign.objects.get(name="Imported prefs")
    page.click("nav a:text-is('Import')")
    page.wait_for_url(f"**/campaigns/{campaign.pk}/import/")
    formats = page.eval_on_selector_all("#import-format option", "os => os.map(o => o.value)")
    assert {"auto", "trl", "hh-rlhf", "sharegpt", "prompts-jsonl", "prompts-csv", "self-instruct"} <= set(formats)
    page.select_option("#import-format", "trl")

    broken = [PAIRS[0], {"prompt": PAIRS[1]["prompt"], "chosen": PAIRS[1]["chosen"], "rejected": 7}, PAIRS[2]]
    check_file(page, write_jsonl(tmp_path / "prefs.jsonl", broken), "rejected")
    rows = page.eval_on_selector_all("#import-errors tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    assert len(rows) == 1 and rows[0][:2] == ["2", "rejected"] and rows[0][2], rows
    assert "nothing was imported" in page.inner_text("#import-detail")
    assert page.is_hidden("#import-commit")
    screenshot(page, "import-rejected", full_page=True)
    assert not ComparisonItem.objects.filter(campaign=campaign).exists()

    check_file(page, write_jsonl(tmp_path / "prefs-fixed.jsonl", PAIRS), "checked")
    assert page.inner_text("[data-count=items_created]") == "3"
    assert page.inner_text("#import-commit") == "Import 3 records"
    screenshot(page, "import-checked", full_page=True)
    assert not ComparisonItem.objects.filter(campaign=campaign).exists()  # the dry run wrote nothing

    page.click("#import-commit")
    page.wait_for_selector("#import-outcome[data-outcome=imported]")
    assert page.is_hidden("#import-commit")
    screenshot(page, "import-done", full_page=True)
    items = ComparisonItem.objects.filter(campaign=campaign).select_related("prompt")
    assert sorted(i.prompt.text for i in items) == sorted(p["prompt"] for p in PAIRS)
    texts = {i.prompt.text: sorted(r.text for r in i.responses.all()) for i in items}
    assert texts[PAIRS[1]["prompt"]] == sorted([PAIRS[1]["chosen"], PAIRS[1]["rejected"]])


def _judge_all(campaign, annotator):
    """The annotator judges every item: the first shown response wins, strength 2, except one tie."""
    made = []
    while (slot := assignment_next(user=annotator, campaign=campaign)) is not None:
        data = JudgmentInput(tie=True) if not made else JudgmentInput(winner=slot.shown_order[0], strength=2)
        made.append(judgment_record(user=annotator, assignment_id=slot.pk, data=data))
    return made


def test_researcher_downloads_an_export_matching_the_judgments(new_page, tmp_path):
    campaign = campaign_create(created_by=UserFactory(), name="Export me", allow_tie=True)
    add_items(campaign, [(p["prompt"], [p["chosen"], p["rejected"]]) for p in PAIRS])
    _judge_all(campaign, member(campaign, Role.ANNOTATOR))
    researcher = member(campaign, Role.RESEARCHER)
    page = new_page()
    login(page, researcher.username, next_path=f"/campaigns/{campaign.pk}/export/")
    assert page.is_visible("#export-jobs-empty")
    page.select_option("#export-trl-preference-ties", "keep")
    page.select_option("#export-trl-preference-margin", "strength")
    screenshot(page, "export", full_page=True)
    with page.expect_download() as info:
        page.click("#export-download")
    download = info.value
    assert download.suggested_filename == f"export-me-{campaign.pk}-trl-preference.jsonl"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]

    expected = []
    for j in Judgment.objects.filter(campaign=campaign).select_related("item__prompt").order_by("id"):
        responses = {r.pk: r.text for r in j.item.responses.all()}
        if j.tie:
            a, b = (responses[i] for i in j.shown_order)
            expected.append(("tie", j.item.prompt.text, {a, b}, 0.0))
        else:
            loser = next(t for pk, t in responses.items() if pk != j.winner_id)
            expected.append(("preference", j.item.prompt.text, (responses[j.winner_id], loser), 2.0))
    got = []
    for r in records:
        pair = {r["chosen"], r["rejected"]} if r["label"] == "tie" else (r["chosen"], r["rejected"])
        got.append((r["label"], r["prompt"], pair, r["margin"]))
    assert len(records) == 3 and got == expected
