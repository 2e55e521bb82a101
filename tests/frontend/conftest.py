"""Fixtures for the web UI tests: campaigns with items of known texts, and for the browser tests a real
ASGI server (Daphne, HTTP and WebSocket in one process, like production) and Debian's Chromium.

The server is a forked process, so it sees only committed data: browser tests use ``transactional_db``. Its
channel layer is in memory, per process, so every action that must reach the dashboard (another annotator's
submit) goes through that same server over HTTP."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from labeling.models import Role
from labeling.services.campaigns import campaign_create, round_current
from labeling.services.items import ItemSpec, PromptSpec, ResponseSpec, items_create
from tests.factories import UserFactory, member

# Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make around it are
# plain synchronous code, so Django's async-context guard would be a false alarm here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("LOOPWISE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync",
]
PASSWORD = "pw-Loopwise-1"  # tests.factories.UserFactory's
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def make_campaign(name="UI campaign", admin=None, **fields):
    admin = admin or UserFactory()
    return campaign_create(created_by=admin, name=name, **fields), admin


def add_items(campaign, items):
    """``items``: (prompt text or chat message list, [response texts]) pairs, created as an import would."""
    specs = []
    for prompt, responses in items:
        spec = PromptSpec(messages=prompt) if isinstance(prompt, list) else PromptSpec(text=prompt)
        specs.append(ItemSpec(prompt=spec, responses=[ResponseSpec(text=t, model_name="m") for t in responses]))
    items_create(campaign=campaign, round=round_current(campaign=campaign), specs=specs)


def annotator(campaign, username=None):
    return member(campaign, Role.ANNOTATOR, username=username) if username else member(campaign, Role.ANNOTATOR)


# --- browser ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium_path():
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: apt-get install -y chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium); browser tests skipped")
    return CHROMIUM


@contextmanager
def daphne_server(django_db_blocker) -> Iterator[str]:
    """Daphne serving config.asgi (HTTP + WebSocket, static files through WhiteNoise) on a free port, with the
    channel layer the settings hold when it starts; yields its base URL."""
    from channels.testing.live import make_application
    from daphne.testing import DaphneProcess
    from django.conf import settings
    from django.db import connections

    saved = (settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)
    # Plain HTTP on 127.0.0.1: Secure cookies would not come back.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    server = DaphneProcess("127.0.0.1", partial(make_application, static_wrapper=None))
    server.daemon = True
    # Forked while unblocked: pytest-django's guard against database access outside tests is copied into the
    # child as it stands, and the server must always reach the database.
    with django_db_blocker.unblock():
        connections.close_all()  # the fork must not share our database sockets
        server.start()
    try:
        if not server.ready.wait(timeout=30):
            pytest.fail("Daphne did not start within 30 s")
        yield f"http://127.0.0.1:{server.port.value}"
    finally:
        server.terminate()
        server.join(timeout=10)
        settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE = saved


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, django_db_blocker, chromium_path):
    """Daphne on a free port with the settings' (in-memory) channel layer."""
    with daphne_server(django_db_blocker) as url:
        yield url


@pytest.fixture(scope="session")
def browser(asgi_server, chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, asgi_server):
    """A fresh browser context per call (its own cookies); JS errors on any page fail the test."""
    contexts, errors = [], []

    def make(width=1400, height=900):
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=asgi_server)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if os.environ.get("LOOPWISE_DEBUG_BROWSER"):
            page.on("console", lambda m: print("console:", m.text))
            page.on("response", lambda r: print("http:", r.request.method, r.url, r.status, r.request.post_data, (r.text()[:80] if "queue" in r.url else "")))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def login(page, username, password=PASSWORD, next_path="/"):
    page.goto(f"/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.press("#id_password", "Enter")
    page.wait_for_url(f"**{next_path}")


def screenshot(page, name, full_page=False):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


# --- training runs ------------------------------------------------------------------------------------
def make_run(campaign, kind="dpo", *, history=(), metrics=None, finish=True, policy=None, model="tiny-model",
             **spec):
    """A TrainingRun taken through the services the way a worker does (create, start, progress, succeed),
    without training: ``history`` is [(step, loss, extra dict)] written by the jobs' own progress writer
    (``rlhf.training.common.Progress``: progress.jsonl) and recorded on the run. ``finish`` registers its
    output (a policy or reward model version) with ``metrics``."""
    from rlhf.services import runs as run_services
    from rlhf.training.common import Progress

    spec = {"model": model, "train_file": "pairs.jsonl", **spec}
    run = run_services.run_create(kind=kind, spec=spec, campaign=campaign, policy=policy)
    run_services.run_start(run_id=run.pk, task_id=f"test-{run.pk}")
    folder = run_services.run_dir(run.pk)
    folder.mkdir(parents=True, exist_ok=True)
    progress = Progress(folder, lambda rec: run_services.run_record_progress(run_id=run.pk, record=rec))
    progress.start(max((h[0] for h in history), default=0))
    for step, loss, *extra in history:
        progress.record(step, loss, **(extra[0] if extra else {}))
    if finish:
        run_services.run_succeed(run_id=run.pk, metrics=metrics or {})
    run.refresh_from_db()
    return run
