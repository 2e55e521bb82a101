"""The web UI's views through Django's test client: who may open what, what the pages carry (CSP, page data,
sanitized Markdown), and the admin forms writing through the services."""
from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from labeling.models import Campaign, Judgment, Membership, Role
from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput
from tests.factories import UserFactory, member

from .conftest import add_items, make_campaign

pytestmark = pytest.mark.django_db

ADMIN_PAGES = ["settings/", "members/", "import/"]
READER_PAGES = ["dashboard/", "dashboard/data/", "judgments/", "export/"]


def client_as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world():
    campaign, admin = make_campaign(ranking_enabled=True)
    add_items(campaign, [("Say hi", ["Hi", "Hello"]), ("Rank", ["a", "b", "c"])])
    other, _ = make_campaign(name="Other campaign")
    return {
        "campaign": campaign,
        "other": other,
        "admin": admin,
        "annotator": member(campaign, Role.ANNOTATOR),
        "researcher": member(campaign, Role.RESEARCHER),
        "stranger": UserFactory(),
    }


def url(campaign, page=""):
    return f"/campaigns/{campaign.pk}/{page}"


def test_anonymous_users_are_sent_to_login(client, world):
    for path in ["/", url(world["campaign"], "annotate/"), url(world["campaign"], "dashboard/")]:
        response = client.get(path)
        assert response.status_code == 302 and response.url.startswith("/login/"), path


def test_login_page_logs_in_and_logout_needs_post(world):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = client.post("/login/", {"username": world["annotator"].username, "password": "pw-Loopwise-1",
                                       "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response.url == "/"
    assert client.get("/logout/").status_code == 405
    home = client.get("/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', home.content.decode()).group(1)
    assert client.post("/logout/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_home_lists_only_my_campaigns_with_my_roles(world):
    annotator = world["annotator"]
    member(world["campaign"], Role.RESEARCHER, user=annotator)
    body = client_as(annotator).get("/").content.decode()
    assert world["campaign"].name in body and world["other"].name not in body
    assert 'badge role">annotator' in body and 'badge role">researcher' in body


def test_annotator_reaches_the_workspace_but_no_admin_or_researcher_page(world):
    client = client_as(world["annotator"])
    assert client.get(url(world["campaign"], "annotate/")).status_code == 200
    for page in ADMIN_PAGES + READER_PAGES + ["items/1/"]:
        assert client.get(url(world["campaign"], page)).status_code in (403, 404), page


def test_researcher_reads_but_does_not_administer(world):
    client = client_as(world["researcher"])
    for page in READER_PAGES:
        assert client.get(url(world["campaign"], page)).status_code == 200, page
    for page in ADMIN_PAGES + ["annotate/"]:
        assert client.get(url(world["campaign"], page)).status_code == 403, page


def test_admin_reaches_everything_in_their_campaign(world):
    client = client_as(world["admin"])
    for page in ADMIN_PAGES + READER_PAGES:
        assert client.get(url(world["campaign"], page)).status_code == 200, page


def test_other_campaigns_are_404_for_everyone_but_staff(world):
    for who in ["admin", "annotator", "researcher", "stranger"]:
        client = client_as(world[who])
        for page in ADMIN_PAGES + READER_PAGES + ["annotate/"]:
            assert client.get(url(world["other"], page)).status_code == 404, (who, page)
    staff = UserFactory(is_staff=True)
    assert client_as(staff).get(url(world["other"], "dashboard/")).status_code == 200


def test_pages_carry_a_strict_csp_and_no_inline_script(world):
    client = client_as(world["admin"])
    member(world["campaign"], Role.ANNOTATOR, user=world["admin"])
    for page in ["annotate/", "dashboard/", "settings/", "judgments/"]:
        response = client.get(url(world["campaign"], page))
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "object-src 'none'" in csp
        html = response.content.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert 'type="application/json"' in tag or ('type="module"' in tag and "src=" in tag), tag
        assert "http://" not in html.replace("http://testserver", "") and "https://" not in html, page


def test_annotate_page_data_is_a_json_block(world):
    response = client_as(world["annotator"]).get(url(world["campaign"], "annotate/"))
    data = json.loads(re.search(r'<script id="page-data" type="application/json">(.*?)</script>',
                                response.content.decode(), re.S).group(1))
    assert data["campaign"]["id"] == world["campaign"].pk
    assert data["api"]["next"] == f"/api/v1/campaigns/{world['campaign'].pk}/queue/next/"
    assert data["csrf"]


def test_next_assignment_payload_has_sanitized_html(world):
    campaign = world["campaign"]
    add_items(campaign, [("<script>x()</script> **bold**", ["[a](javascript:alert(1))", "<img src=x onerror=y>"])])
    api = client_as(world["annotator"])
    seen = []
    for _ in range(3):
        slot = api.post(f"/api/v1/campaigns/{campaign.pk}/queue/next/").json()["assignment"]
        seen.append(slot)
        api.post(f"/api/v1/assignments/{slot['id']}/skip/", {}, content_type="application/json")
    slot = next(s for s in seen if "bold" in s["prompt"]["text"])
    assert slot["prompt"]["html"] == "<p>&lt;script&gt;x()&lt;/script&gt; <strong>bold</strong></p>"
    htmls = " ".join(r["html"] for r in slot["responses"])
    assert "javascript:" not in htmls and "<img" not in htmls and "&lt;img" in htmls
    assert {r["text"] for r in slot["responses"]} == {"[a](javascript:alert(1))", "<img src=x onerror=y>"}


def test_dashboard_numbers(world):
    campaign = world["campaign"]
    annotator = world["annotator"]
    slot = assignment_next(user=annotator, campaign=campaign)
    judgment_record(user=annotator, assignment_id=slot.pk,
                    data=JudgmentInput(winner=slot.shown_order[0], strength=2, time_spent_ms=4000))
    data = client_as(world["researcher"]).get(url(campaign, "dashboard/data/")).json()
    assert data["judgments"] == 1 and data["judgments_last_hour"] == 1
    assert data["items_total"] == 2 and data["items_complete"] == 1 and data["items_remaining"] == 1
    assert data["queue_depth"] == 1
    row = next(a for a in data["annotators"] if a["username"] == annotator.username)
    assert row == {**row, "total": 1, "last_hour": 1, "avg_seconds": 4.0, "working": False}
    assert data["timeline"]["bucket"] == "minute" and sum(n for _, n in data["timeline"]["points"]) == 1


def test_dashboard_numbers_take_few_queries(world, django_assert_max_num_queries):
    for _ in range(5):
        member(world["campaign"], Role.ANNOTATOR)
    from frontend.selectors import dashboard_numbers

    with django_assert_max_num_queries(12):
        dashboard_numbers(campaign=world["campaign"])


def test_markdown_preview_is_sanitized_and_needs_login(client, world):
    assert client.post("/preview/markdown/", {"text": "x"}).status_code == 302
    body = client_as(world["admin"]).post("/preview/markdown/", {"text": "# T\n<script>a()</script>"}).json()
    assert body["html"] == "<h1>T</h1>\n<p>&lt;script&gt;a()&lt;/script&gt;</p>"


def test_campaign_create_and_edit_through_the_forms(world):
    staff = UserFactory(is_staff=True)
    client = client_as(staff)
    form = {"name": "Made in UI", "status": "active", "guidelines": "Be kind", "overlap": 3,
            "pairwise_enabled": "on", "allow_tie": "on", "rationale": "required", "lease_seconds": 300}
    response = client.post("/campaigns/new/", form)
    campaign = Campaign.objects.get(name="Made in UI")
    assert response.status_code == 302 and response.url == f"/campaigns/{campaign.pk}/settings/"
    assert campaign.overlap == 3 and campaign.rationale == "required" and not campaign.allow_both_bad
    assert Membership.objects.filter(campaign=campaign, user=staff, role=Role.ADMIN).exists()
    bad = client.post(url(campaign, "settings/"), {**form, "pairwise_enabled": "", "ranking_enabled": ""})
    assert bad.status_code == 200 and "turn on at least one judgment kind" in bad.content.decode()
    ok = client.post(url(campaign, "settings/"), {**form, "overlap": 2, "ranking_enabled": "on"})
    campaign.refresh_from_db()
    assert ok.status_code == 200 and campaign.overlap == 2 and campaign.ranking_enabled
    assert client_as(world["annotator"]).get("/campaigns/new/").status_code == 403


def test_members_page_adds_pauses_and_removes(world):
    campaign, client = world["campaign"], client_as(world["admin"])
    newbie = UserFactory(username="newbie")
    assert client.post(url(campaign, "members/"), {"action": "add", "username": "newbie", "role": "annotator"}).status_code == 302
    membership = Membership.objects.get(campaign=campaign, user=newbie, role=Role.ANNOTATOR)
    client.post(url(campaign, "members/"), {"action": "pause", "user_id": newbie.pk, "role": "annotator"})
    membership.refresh_from_db()
    assert membership.paused
    client.post(url(campaign, "members/"), {"action": "remove", "user_id": newbie.pk, "role": "annotator"})
    assert not Membership.objects.filter(pk=membership.pk).exists()
    again = client.post(url(campaign, "members/"), {"action": "add", "username": "nobody", "role": "annotator"})
    assert again.status_code == 200 and "no user named" in again.content.decode()
    last_admin = client.post(url(campaign, "members/"), {"action": "remove", "user_id": world["admin"].pk, "role": "admin"})
    assert "at least one admin" in last_admin.content.decode()


def test_judgment_browser_filters_and_item_page(world):
    campaign, annotator = world["campaign"], world["annotator"]
    other = member(campaign, Role.ANNOTATOR)
    for who in (annotator, other):  # overlap 1: one gets the pairwise item, the other the ranking one
        slot = assignment_next(user=who, campaign=campaign)
        data = JudgmentInput(tie=True) if slot.item.kind == "pairwise" else JudgmentInput(ranking=[slot.shown_order])
        judgment_record(user=who, assignment_id=slot.pk, data=JudgmentInput(**{**data.__dict__, "rationale": "same <b>to me</b>"}))
    client = client_as(world["researcher"])
    everyone = client.get(url(campaign, "judgments/")).content.decode()
    assert "2 judgments" in everyone
    pairwise = Judgment.objects.get(kind="pairwise")
    mine = client.get(url(campaign, f"judgments/?annotator={pairwise.annotator_id}&kind=pairwise")).content.decode()
    assert "1 judgment<" in mine and pairwise.annotator.username in mine
    none = client.get(url(campaign, f"judgments/?annotator={pairwise.annotator_id}&kind=ranking")).content.decode()
    assert "0 judgments" in none
    page = client.get(url(campaign, f"items/{pairwise.item_id}/")).content.decode()
    assert page.count("same &lt;b&gt;to me&lt;/b&gt;") == 1 and "Say hi" in page and ">tie<" in page
    assert client.get(url(campaign, "items/999999/")).status_code == 404


def _vote(user, campaign, pick):
    """``user`` judges every item open to them, choosing the response whose text ``pick(prompt)`` names."""
    while (slot := assignment_next(user=user, campaign=campaign)) is not None:
        texts = {r.text: r.pk for r in slot.item.responses.all()}
        judgment_record(user=user, assignment_id=slot.pk, data=JudgmentInput(winner=texts[pick(slot.item.prompt.text)]))


def test_judgment_browser_filters_by_agreement():
    campaign, _ = make_campaign(overlap=3)
    add_items(campaign, [("Agree?", ["yes", "no"]), ("Split?", ["yes", "no"])])
    people = [member(campaign, Role.ANNOTATOR) for _ in range(3)]
    for n, who in enumerate(people):  # "Split?": 2 of 3 say yes, below the default review threshold of 0.7
        _vote(who, campaign, lambda prompt, n=n: "no" if prompt == "Split?" and n == 1 else "yes")
    add_items(campaign, [("Once?", ["yes", "no"])])
    _vote(people[0], campaign, lambda prompt: "yes")
    client = client_as(member(campaign, Role.RESEARCHER))
    counts = {}
    for level in ["", "agree", "disagree", "single"]:
        html = client.get(url(campaign, f"judgments/?agreement={level}")).content.decode()
        counts[level] = re.search(r"(\d+) judgments?<", html).group(1)
        if level == "agree":
            assert html.count(">100% of 3<") == 3
        if level == "disagree":
            assert html.count(">67% of 3<") == 3
    assert counts == {"": "7", "agree": "3", "disagree": "3", "single": "1"}


def test_import_page_offers_the_importers_formats(world):
    from labeling.importers import FORMATS

    html = client_as(world["admin"]).get(url(world["campaign"], "import/")).content.decode()
    offered = set(re.findall(r'<option value="([^"]*)"', html.split('id="import-format"')[1].split("</select>")[0]))
    assert offered == {"auto", *FORMATS}


def test_export_form_redirects_to_the_api_with_only_its_parameters(world):
    campaign = world["campaign"]
    client = client_as(world["researcher"])
    response = client.get(url(campaign, "export/?download=1&format=trl-preference&round=&ties=keep&margin=&x=1"))
    assert response.status_code == 302
    assert response.url == f"/api/v1/campaigns/{campaign.pk}/export/?format=trl-preference&ties=keep"
    bad = client.get(response.url.replace("ties=keep", "ties=maybe"))
    assert bad.status_code == 400 and "ties must be one of" in bad.json()["detail"]


def test_export_page_lists_snapshot_exports_with_download_links(world, settings, tmp_path):
    from labeling.services.snapshots import export_job_create, export_job_run

    settings.STORAGE_DIR = str(tmp_path)  # export files land under it
    campaign = world["campaign"]
    client = client_as(world["researcher"])
    assert "No snapshot exports yet" in client.get(url(campaign, "export/")).content.decode()
    done = export_job_create(campaign=campaign, created_by=world["researcher"], format="trl-preference")
    export_job_run(job_id=done.pk)
    queued = export_job_create(campaign=campaign, created_by=world["admin"], format="canonical")
    html = client.get(url(campaign, "export/")).content.decode()
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>.*?</tr>", html, flags=re.S)
    assert rows == [str(queued.pk), str(done.pk)]  # newest first
    link = f'href="/api/v1/campaigns/{campaign.pk}/exports/{done.pk}/download/"'
    assert html.count(link) == 1 and f"/exports/{queued.pk}/download/" not in html
    # The queued job's snapshot is built by the worker: pending until then; the done one names its snapshot.
    done.refresh_from_db()
    cells = dict(re.findall(r'<tr>\s*<td>(\d+)</td>.*?<td class="export-snapshot">(.*?)</td>', html, flags=re.S))
    assert "pending" in cells[str(queued.pk)] and str(done.snapshot_id) not in cells[str(queued.pk)]
    assert cells[str(done.pk)].startswith(f"{done.snapshot_id} ") and done.snapshot.content_hash[:12] in cells[str(done.pk)]
    assert client.get(link[6:-1]).status_code == 200
