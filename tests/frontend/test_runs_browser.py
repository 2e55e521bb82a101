"""The training pages in a real Chromium: a run's progress, recorded by ``run_record_progress`` in this process
the way a GPU worker records it, reaches the open runs page and the dashboard over the WebSocket; two runs
ticked and compared show the side-by-side table and overlaid curves.

Progress comes from another process here (as from a worker in production), so the server of these tests uses
the Redis channel layer (``TEST_REDIS_URL``), like production, instead of the shared fixture's in-memory one."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import override_settings

from labeling.models import Role
from rlhf.services import runs as run_services
from tests.factories import member

from .conftest import daphne_server, login, make_campaign, make_run, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def redis_server(django_db_setup, django_db_blocker, chromium_path):
    """Daphne (HTTP + WebSocket) with the Redis channel layer, shared with this process while it runs."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {REDIS_URL} in CI")
        pytest.skip(f"no Redis at {REDIS_URL}")
    layers = override_settings(CHANNEL_LAYERS={
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}})
    layers.enable()
    try:
        with daphne_server(django_db_blocker) as url:
            yield url
    finally:
        layers.disable()


@pytest.fixture
def open_page(browser, redis_server):
    """Pages of the shared session Chromium (one Playwright per session), pointed at this module's server."""
    contexts, errors = [], []

    def make():
        context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=redis_server)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def as_worker(fn, *args, **kwargs):
    """Call a service from another thread, as a worker would from its own process: this thread runs
    Playwright's event loop, where the services' synchronous event sending may not run."""

    def call():
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()  # the thread's own connection; the test database must be droppable after

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result(timeout=30)


def progress(run, step, total, loss):
    as_worker(run_services.run_record_progress, run_id=run.pk,
              record={"step": step, "total": total, "loss": loss, "eta_s": (total - step) * 2.0})


def test_progress_shows_live_and_two_runs_compare_side_by_side(open_page):
    campaign, admin = make_campaign(name="Training campaign")
    researcher = member(campaign, Role.RESEARCHER)
    first = as_worker(make_run, campaign, history=[(1, 0.9), (2, 0.7), (3, 0.5)], lr=1e-4)
    second = as_worker(make_run, campaign, history=[(1, 0.95), (2, 0.6), (3, 0.3)], lr=3e-4)
    live = as_worker(make_run, campaign, history=[(1, 0.8)], finish=False)
    progress(live, 1, 20, 0.8)

    page = open_page()
    login(page, researcher.username, next_path=f"/campaigns/{campaign.pk}/runs/")
    page.wait_for_selector("#live[data-mode=live]")
    row = f"tr[data-run='{live.pk}']"
    assert page.inner_text(f"{row} [data-field=steps]") == "1 / 20"

    progress(live, 7, 20, 0.4321)  # as the worker does: no page reload, no poll (polling is every 10 s)
    page.wait_for_function(
        "(sel) => document.querySelector(sel + ' [data-field=steps]').textContent === '7 / 20'", arg=row, timeout=5_000)
    assert page.inner_text(f"{row} [data-field=loss]") == "0.4321"
    assert page.inner_text(f"{row} [data-field=eta]") == "26 s"
    assert page.eval_on_selector(f"{row} progress", "p => [p.value, p.max]") == [7, 20]
    screenshot(page, "runs", full_page=True)

    board = open_page()
    login(board, admin.username, next_path=f"/campaigns/{campaign.pk}/dashboard/")
    board.wait_for_selector("#live[data-mode=live]")
    progress(live, 12, 20, 0.25)
    board.wait_for_function(
        "(sel) => document.querySelector('#training-runs ' + sel + ' [data-field=steps]')?.textContent === '12 / 20'",
        arg=row, timeout=5_000)
    page.wait_for_function(
        "(sel) => document.querySelector(sel + ' [data-field=steps]').textContent === '12 / 20'", arg=row, timeout=5_000)
    as_worker(run_services.run_succeed, run_id=live.pk, metrics={"steps": 20})
    page.wait_for_function(
        "(sel) => document.querySelector(sel + ' [data-field=status]').textContent.trim() === 'succeeded'", arg=row,
        timeout=5_000)

    page.check(f"#cmp-{first.pk}")
    page.check(f"#cmp-{second.pk}")
    assert page.inner_text("#compare-button") == "Compare selected runs (2)"
    page.click("#compare-button")
    page.wait_for_url("**/runs/compare/**")
    headers = page.locator("#compare-runs thead th").all_inner_texts()
    assert headers == ["Run", f"#{first.pk}", f"#{second.pk}"]
    assert page.locator("#compare-spec tr.differs th code").all_inner_texts() == ["lr"]
    loss = page.locator("figure[data-metric=loss]")
    assert loss.locator("polyline.series").count() == 2
    assert loss.locator(".legend li").all_inner_texts() == [f"run {first.pk} (dpo)", f"run {second.pk} (dpo)"]
    screenshot(page, "runs-compare", full_page=True)


def test_training_pages_have_labelled_controls(open_page):
    from .test_browser import UNNAMED_CONTROLS

    campaign, admin = make_campaign(name="Labelled campaign")
    run = as_worker(make_run, campaign, history=[(1, 0.5), (2, 0.4)])
    other = as_worker(make_run, campaign, history=[(1, 0.6)])
    page = open_page()
    login(page, admin.username)
    for path in ["runs/", f"runs/{run.pk}/", f"runs/compare/?run={run.pk}&run={other.pk}", "dashboard/"]:
        page.goto(f"/campaigns/{campaign.pk}/{path}")
        assert page.evaluate(UNNAMED_CONTROLS) == [], path
        if path == f"runs/{run.pk}/":
            screenshot(page, "run-detail", full_page=True)
        if path == "dashboard/":
            page.wait_for_selector("#live[data-mode=live]")
            screenshot(page, "dashboard-training", full_page=True)
