"""Shared fixtures. Tests run against the database in DATABASE_URL (PostgreSQL in CI: `make test` points
there); the few that need PostgreSQL itself (row locks under concurrency) say so and skip elsewhere."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """The default hasher costs ~0.5 s per user, most of the suite's time otherwise. Session-wide and set
    before the browser tests' server forks, so it checks passwords the same way."""
    from django.test import override_settings

    override = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    override.enable()
    yield
    override.disable()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder beside the repository. Present in CI (so these tests never skip there); a
    user's fresh clone may not have it."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing in CI")
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the repository in CI)")
    return SHARED_DATA


@pytest.fixture
def api():
    from rest_framework.test import APIClient

    return APIClient()


def client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=user)
    return client
