"""Fixtures for the rlhf app's tests: a tiny policy built once per session, run folders under a temporary
storage directory, and a live Celery worker for the end-to-end loop."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory) -> Path:
    from rlhf.training.tiny import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("rlhf-tiny") / "policy", seed=0)


@pytest.fixture(scope="session")
def tiny_reward_dir(tmp_path_factory) -> Path:
    from rlhf.training.tiny import build_tiny_reward

    return build_tiny_reward(tmp_path_factory.mktemp("rlhf-tiny-rm") / "reward", seed=0)


@pytest.fixture
def storage(tmp_path, settings) -> Path:
    """Runs and loop data of this test go to its own folder."""
    settings.STORAGE_DIR = tmp_path / "storage"
    settings.STORAGE_DIR.mkdir()
    return settings.STORAGE_DIR
