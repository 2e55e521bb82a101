"""Fixtures for the training tests: one tiny policy, one tiny reward backbone and synthetic data files, built
once per session (about a second) and shared read-only by every test."""

from __future__ import annotations

import os

# Must precede the first torch import: with both cores busy, one thread per process is faster for tiny models.
os.environ["OMP_NUM_THREADS"] = "1"

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)



@dataclass(frozen=True)
class Tiny:
    root: Path
    policy: Path
    reward: Path
    train_pairs: Path
    eval_pairs: Path
    prompts: Path
    chat_prompts: Path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Tiny:
    from rlhf.training.common import write_jsonl
    from rlhf.training.tiny import build_tiny_policy, build_tiny_reward, synthetic_pairs, synthetic_prompts

    root = tmp_path_factory.mktemp("tiny")
    t = Tiny(root, root / "policy", root / "reward", root / "train.jsonl", root / "eval.jsonl",
             root / "prompts.jsonl", root / "chat_prompts.jsonl")
    build_tiny_policy(t.policy, seed=0)
    build_tiny_reward(t.reward, seed=0)
    write_jsonl(t.train_pairs, synthetic_pairs(64, seed=1))
    write_jsonl(t.eval_pairs, synthetic_pairs(32, seed=2))
    write_jsonl(t.prompts, synthetic_prompts(8, seed=3))
    write_jsonl(t.chat_prompts, synthetic_prompts(8, seed=4, chat=True))
    return t


@pytest.fixture(scope="session")
def real_data(shared_data) -> Path:
    """``../shared/data`` (tests/conftest.py's ``shared_data``: never skipped in CI)."""
    return shared_data


@dataclass(frozen=True)
class TrainedReward:
    out: Path
    metrics: dict
    progress_seen: list


@pytest.fixture(scope="session")
def trained_reward(tiny, tmp_path_factory) -> TrainedReward:
    """The tiny reward backbone trained on the friendly-words rule (about 2 s). Its test checks that it learned;
    the online RL tests use its merged folder as a reward model."""
    from rlhf.training import reward
    from rlhf.training.specs import RewardSpec

    out = tmp_path_factory.mktemp("reward") / "rm"
    seen: list = []
    spec = RewardSpec(output_dir=str(out), model=str(tiny.reward), train_file=str(tiny.train_pairs),
                      eval_file=str(tiny.eval_pairs), max_steps=30, lr=3e-3, batch_size=8, max_length=64)
    return TrainedReward(out, reward.run(spec, progress=seen.append), seen)


def pytest_configure(config):
    # TRL 1.16 reads transformers' renamed `is_gradient_checkpointing`; not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore:.*deprecated and will be removed in v6.*:FutureWarning")
