"""The web UI in a real Chromium against a real ASGI server (see conftest): keyboard-only judging, retried
submits, the live dashboard, hostile texts, roles, and the annotator page's weight. Screenshots of the main
screens land in test-artifacts/."""
from __future__ import annotations

import json
import uuid

import pytest

from labeling.models import Assignment, Judgment, Role
from tests.factories import member

from .conftest import ARTIFACTS, add_items, annotator, login, make_campaign, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_LINK = "[click me](javascript:window.__xss=1)"


def current_assignment(page) -> int:
    page.wait_for_function("() => document.getElementById('work').dataset.assignment")
    return int(page.get_attribute("#work", "data-assignment"))


def wait_for_next(page, previous: int) -> int:
    page.wait_for_function(
        "(prev) => { const a = document.getElementById('work').dataset.assignment; return a !== undefined && a !== prev; }",
        arg=str(previous),
    )
    value = page.get_attribute("#work", "data-assignment")
    return int(value) if value else 0


def wait_saved(page, count: int) -> None:
    """Wait until the page has stored ``count`` judgments: with a prefetched next item, submit shows the next
    item at once and delivers the judgment in the background."""
    page.wait_for_function("(n) => Number(document.getElementById('work').dataset.saved || 0) >= n", arg=count)


def open_workspace(new_page, user, campaign, **size):
    page = new_page(**size)
    login(page, user.username, next_path=f"/campaigns/{campaign.pk}/annotate/")
    return page


def test_annotator_judges_with_the_keyboard_only(new_page):
    campaign, _ = make_campaign(ranking_enabled=True)
    add_items(campaign, [
        ("Which is the better **greeting**?", ["Hello there! How can I help?", "hi"]),
        ("Explain `len()` in Python.", ["```python\nlen([1, 2, 3])  # 3\n```\nReturns the number of items.", "It is long."]),
        ("Rank these answers to 2 + 2.", ["4", "Four, because 2 + 2 = 4.", "5"]),
    ])
    user = annotator(campaign)
    page = open_workspace(new_page, user, campaign)
    first = current_assignment(page)
    page.keyboard.press("1")
    page.keyboard.press("Shift+Digit2")
    assert page.get_attribute("[data-choice=a]", "aria-pressed") == "true"
    assert page.get_attribute("[data-strength='2']", "aria-pressed") == "true"
    screenshot(page, "annotate-pairwise")
    page.keyboard.press("Enter")
    second = wait_for_next(page, first)
    wait_saved(page, 1)
    assert Judgment.objects.filter(annotator=user).count() == 1

    page.keyboard.press("u")  # undo: the first item comes back, its judgment is gone
    assert wait_for_next(page, second) == first
    assert Judgment.objects.filter(annotator=user).count() == 0
    page.keyboard.press("2")
    page.keyboard.press("Shift+Digit3")
    page.keyboard.press("Enter")
    assert wait_for_next(page, first) == second
    wait_saved(page, 2)

    page.keyboard.press("t")
    page.keyboard.press("Enter")
    third = wait_for_next(page, second)
    wait_saved(page, 3)
    page.keyboard.press("3")  # pick C, move it to the top, then tie B with its left neighbour A
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("2")
    page.keyboard.press("t")
    assert page.inner_text("#rank-list").split() == ["C", "≻", "A", "=", "B"]
    screenshot(page, "annotate-ranking")
    page.keyboard.press("Enter")
    assert wait_for_next(page, third) == 0
    wait_saved(page, 4)
    page.wait_for_selector("#empty:not([hidden])")
    screenshot(page, "annotate-empty")

    j1, j2, j3 = Judgment.objects.filter(annotator=user).order_by("item_id")
    slots = {a.pk: a for a in Assignment.objects.filter(annotator=user)}
    for j in (j1, j2, j3):
        assert j.shown_order == slots[j.assignment_id].shown_order and j.time_spent_ms > 0
        assert j.client_id is not None
    assert len(j1.shown_order) == 2 and j1.winner_id == j1.shown_order[1] and j1.strength == 3
    assert j2.tie and j2.winner_id is None
    a, b, c = j3.shown_order
    assert j3.kind == "ranking" and j3.ranking == [[c], [a, b]]
    page.wait_for_function("() => document.querySelector('[data-progress=mine_total]').textContent === '3'")


def test_a_failed_submit_is_retried_with_the_same_client_id(new_page):
    campaign, _ = make_campaign()
    add_items(campaign, [("One?", ["yes", "no"]), ("Two?", ["yes", "no"])])
    user = annotator(campaign)
    page = open_workspace(new_page, user, campaign)
    first = current_assignment(page)
    bodies = []

    def lose_first_response(route):
        bodies.append(json.loads(route.request.post_data))
        if len(bodies) == 1:
            route.fetch()  # the server stores the judgment, but its answer never reaches the page
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/submit/", lose_first_response)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    second = wait_for_next(page, first)
    wait_saved(page, 1)
    assert len(bodies) == 2 and bodies[0]["client_id"] == bodies[1]["client_id"]
    assert Judgment.objects.filter(annotator=user).count() == 1
    assert str(Judgment.objects.get(annotator=user).client_id) == bodies[0]["client_id"]

    page.unroute("**/submit/")
    page.route("**/submit/", lambda route: route.abort("internetdisconnected"))
    page.keyboard.press("t")
    page.keyboard.press("Enter")
    page.wait_for_selector("#banner:not([hidden])", timeout=15_000)
    assert "could not be saved" in page.inner_text("#banner")
    assert int(page.get_attribute("#work", "data-assignment")) == second  # still on the unsaved item
    screenshot(page, "annotate-submit-failed")
    page.unroute("**/submit/")
    page.keyboard.press("Enter")
    wait_for_next(page, second)
    assert Judgment.objects.filter(annotator=user).count() == 2


def test_dashboard_updates_live_and_falls_back_to_polling(new_page):
    campaign, admin = make_campaign(overlap=2)
    add_items(campaign, [(f"Question {i}?", [f"answer {i}", f"reply {i}"]) for i in range(4)])
    workers = [annotator(campaign, username="ann_one"), annotator(campaign, username="ann_two")]
    board = new_page()
    login(board, admin.username, next_path=f"/campaigns/{campaign.pk}/dashboard/")
    board.wait_for_selector("#live[data-mode=live]")
    assert board.inner_text("[data-kpi=judgments]") == "0"

    worker = open_workspace(new_page, workers[0], campaign)
    slot = current_assignment(worker)
    worker.keyboard.press("1")
    worker.keyboard.press("Enter")
    wait_for_next(worker, slot)
    wait_saved(worker, 1)
    # The socket path: polling is every 10 s by default, the update must come well before.
    board.wait_for_function("() => document.querySelector('[data-kpi=judgments]').textContent === '1'", timeout=5_000)
    assert board.inner_text("tr[data-annotator=ann_one] td:nth-child(2)") == "1"
    assert board.locator("#chart-progress svg path").count() == 2
    screenshot(board, "dashboard", full_page=True)

    fallback = new_page()
    fallback.route_web_socket("**/ws/campaigns/**", lambda ws: ws.close(code=1011, reason="test"))
    login(fallback, admin.username, next_path=f"/campaigns/{campaign.pk}/dashboard/?poll=1000")
    fallback.wait_for_selector("#live[data-mode=polling]")
    other = open_workspace(new_page, workers[1], campaign)
    slot = current_assignment(other)
    other.keyboard.press("b")
    other.keyboard.press("Enter")
    wait_for_next(other, slot)
    wait_saved(other, 1)
    fallback.wait_for_function("() => document.querySelector('[data-kpi=judgments]').textContent === '2'", timeout=5_000)


def test_hostile_texts_render_inert(new_page, shared_data):
    record = json.loads((shared_data / "ae_pairs_train.jsonl").read_text(encoding="utf-8").splitlines()[358])
    assert "<html" in record["chosen"]
    guidelines = f"# Rules\n{XSS_SCRIPT}\n{XSS_IMG}\n{XSS_LINK}\n[ok](https://example.org)"
    campaign, admin = make_campaign(guidelines=guidelines)
    add_items(campaign, [
        (f"{XSS_SCRIPT} Which is safer?", [XSS_IMG, XSS_LINK]),
        (record["prompt"], [record["chosen"], record["rejected"]]),
        ([{"role": "system", "content": XSS_SCRIPT}, {"role": "user", "content": "<svg onload=window.__xss=1>"}],
         [f"<iframe src=javascript:window.__xss=1></iframe>{XSS_SCRIPT}", "<a href='javascript:window.__xss=1'>x</a>"]),
    ])
    user = annotator(campaign)
    member(campaign, Role.RESEARCHER, user=user)
    page = open_workspace(new_page, user, campaign, width=420, height=900)
    page.keyboard.press("g")
    previous, seen = None, set()
    for _ in range(3):
        previous = current_assignment(page) if previous is None else wait_for_next(page, previous)
        work = page.locator("#work")
        assert page.evaluate("() => window.__xss") is None
        assert work.locator("script, img, iframe, svg, style").count() == 0
        assert work.locator("a[href^='javascript'], [onerror], [onload]").count() == 0
        text = work.inner_text()
        if "Which is safer" in text:
            assert XSS_SCRIPT in text and XSS_IMG in text
            seen.add("payloads")
            work.locator("a", has_text="click me").click()  # a link without a target: nothing happens
        if "<!DOCTYPE html>" in text:
            assert "<script>" in text and "const modal" in text
            seen.add("html page")
            screenshot(page, "annotate-html-record-narrow", full_page=True)
        page.keyboard.press("s")
    wait_for_next(page, previous)
    assert seen == {"payloads", "html page"}
    guide = page.locator("#guidelines")
    assert XSS_SCRIPT in guide.inner_text() and guide.locator("a[href='https://example.org'][rel~=noopener]").count() == 1
    assert page.evaluate("() => window.__xss") is None
    for item_id in campaign.items.values_list("pk", flat=True):
        page.goto(f"/campaigns/{campaign.pk}/items/{item_id}/")
        assert page.locator("main script, main img, main iframe, main svg").count() == 0
        assert page.evaluate("() => window.__xss") is None


def test_annotator_cannot_open_admin_or_researcher_pages(new_page, asgi_server):
    campaign, _ = make_campaign()
    other, _ = make_campaign(name="Not mine")
    user = annotator(campaign)
    page = open_workspace(new_page, user, campaign)
    for path in ["dashboard/", "settings/", "members/", "judgments/", "import/", "export/"]:
        assert page.goto(f"/campaigns/{campaign.pk}/{path}").status in (403, 404), path
    assert page.goto(f"/campaigns/{other.pk}/annotate/").status == 404
    page.goto("/")
    opened = page.evaluate(
        """(path) => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}${path}`);
            ws.onopen = () => resolve(true);
            ws.onclose = () => resolve(false);
        })""",
        f"/ws/campaigns/{campaign.pk}/",
    )
    assert opened is False


def test_annotator_page_is_light_and_quick(new_page):
    campaign, _ = make_campaign()
    add_items(campaign, [("Short prompt?", ["A short answer.", "Another short answer."])])
    user = annotator(campaign)
    page = new_page()
    login(page, user.username)
    page.goto(f"/campaigns/{campaign.pk}/annotate/")
    page.wait_for_function("() => document.documentElement.dataset.ready")
    perf = page.evaluate(
        """() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const res = performance.getEntriesByType('resource');
            const sum = (list, key) => list.reduce((n, e) => n + e[key], 0);
            return {
                ready_ms: performance.getEntriesByName('lw-ready')[0].startTime,
                dom_content_loaded_ms: nav.domContentLoadedEventEnd,
                requests: res.length + 1,
                transfer_bytes: nav.transferSize + sum(res, 'transferSize'),
                body_bytes: nav.encodedBodySize + sum(res, 'encodedBodySize'),
                static_bytes: sum(res.filter((e) => e.name.includes('/static/')), 'encodedBodySize'),
            };
        }"""
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "annotate-page-weight.json").write_text(json.dumps(perf, indent=2))
    print("annotator page:", perf)
    assert perf["body_bytes"] < 80_000, perf  # HTML + CSS + JS + the first item's JSON, uncompressed
    assert perf["requests"] <= 10, perf
    assert perf["ready_ms"] < 2_000, perf  # first item shown and keys live


def test_admin_screens_and_guidelines_preview(new_page):
    campaign, admin = make_campaign(guidelines="# Be kind", ranking_enabled=True)
    add_items(campaign, [("Hello?", ["Hi", "Hey"])])
    user = annotator(campaign, username="ann_screens")
    slot = Assignment.objects.filter(campaign=campaign).first()
    slot.annotator, slot.state, slot.shown_order = user, Assignment.State.DONE, list(slot.item.responses.values_list("id", flat=True))
    slot.save()
    Judgment.objects.create(
        campaign=campaign, round=slot.round, item=slot.item, assignment=slot, annotator=user, kind="pairwise",
        winner_id=slot.shown_order[0], strength=2, ranking=[[slot.shown_order[0]], [slot.shown_order[1]]],
        shown_order=slot.shown_order, client_id=uuid.uuid4(), time_spent_ms=5300, rationale="Friendlier.",
    )
    page = new_page()
    page.goto("/login/")
    screenshot(page, "login")
    login(page, admin.username)
    screenshot(page, "home")
    page.goto(f"/campaigns/{campaign.pk}/settings/")
    page.fill("#id_guidelines", "## Fresh rules\n\n* one\n* two\n\n" + XSS_SCRIPT)
    page.wait_for_selector("#guidelines-preview h2:text('Fresh rules')")
    assert XSS_SCRIPT in page.inner_text("#guidelines-preview")
    assert page.locator("#guidelines-preview script").count() == 0
    screenshot(page, "settings", full_page=True)
    page.goto(f"/campaigns/{campaign.pk}/members/")
    screenshot(page, "members")
    page.goto(f"/campaigns/{campaign.pk}/judgments/")
    assert "A ≻ B" not in page.inner_text("#judgments") and "(clearly)" in page.inner_text("#judgments")
    screenshot(page, "judgments")
    page.click("#judgments a")
    page.wait_for_selector("text=Friendlier.")
    screenshot(page, "item", full_page=True)
    page.goto(f"/campaigns/{campaign.pk}/import/")
    screenshot(page, "import")


def test_guidelines_are_on_screen_when_wide_and_g_collapses_them(new_page):
    campaign, _ = make_campaign(guidelines="# House rules\n\nPrefer **honest** answers.")
    add_items(campaign, [("Hello?", ["Hi!", "Go away."])])
    user = annotator(campaign)
    page = open_workspace(new_page, user, campaign)
    current_assignment(page)
    guide = page.locator("#guidelines")
    assert guide.is_visible() and "House rules" in guide.inner_text()
    assert page.get_attribute("#guidelines-toggle", "aria-expanded") == "true"
    work, panel = page.locator("#work").bounding_box(), guide.bounding_box()
    assert panel["x"] >= work["x"] + work["width"] and panel["y"] < work["y"] + 50  # a side panel, beside the item
    screenshot(page, "annotate-guidelines-wide")
    page.keyboard.press("g")
    assert guide.is_hidden() and page.get_attribute("#guidelines-toggle", "aria-expanded") == "false"
    page.reload()
    current_assignment(page)
    assert guide.is_hidden()  # the choice is remembered
    page.keyboard.press("g")
    assert guide.is_visible()

    narrow = open_workspace(new_page, user, campaign, width=420, height=900)
    current_assignment(narrow)
    assert narrow.locator("#guidelines").is_hidden()
    narrow.keyboard.press("g")
    assert narrow.locator("#guidelines").is_visible()


UNNAMED_CONTROLS = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button, a[href], [role=button]')]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => {
    const byLabel = el.labels && [...el.labels].some((l) => l.textContent.trim());
    const byAria = el.getAttribute('aria-label') || (el.getAttribute('aria-labelledby') || '').split(' ')
      .some((id) => document.getElementById(id)?.textContent.trim());
    return !(byLabel || byAria || el.textContent.trim() || el.title);
  })
  .map((el) => el.outerHTML.slice(0, 120))"""


def test_controls_are_labelled_and_focus_is_visible(new_page):
    campaign, admin = make_campaign(guidelines="# Rules")
    add_items(campaign, [("Hello?", ["Hi", "Hey"])])
    member(campaign, Role.ANNOTATOR, user=admin)
    page = new_page()
    login(page, admin.username)
    for path in ["", "annotate/", "settings/", "members/", "dashboard/", "judgments/", "import/", "export/"]:
        page.goto(f"/campaigns/{campaign.pk}/{path}" if path else "/")
        if path == "annotate/":
            current_assignment(page)
        assert page.evaluate(UNNAMED_CONTROLS) == [], path

    page.goto(f"/campaigns/{campaign.pk}/annotate/")
    current_assignment(page)
    page.keyboard.press("Tab")  # the first stop is the skip link, then the top bar in reading order
    assert page.evaluate("() => document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    stops = []
    for _ in range(12):
        page.keyboard.press("Tab")
        stop = page.evaluate("""() => {
            const el = document.activeElement, style = getComputedStyle(el);
            if (el === document.body) return null;  // past the last control
            return {id: el.id || el.textContent.trim().slice(0, 20), outline: style.outlineStyle, width: style.outlineWidth};
        }""")
        if stop is None:
            break
        stops.append(stop)
    assert all(s["outline"] != "none" and s["width"] != "0px" for s in stops), stops
    ids = [s["id"] for s in stops]
    assert ids.index("submit") < ids.index("skip"), ids  # the action bar: submit, then skip
