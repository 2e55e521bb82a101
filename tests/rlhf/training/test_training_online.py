"""GRPO and RLOO (TRL trainers) on the tiny policy."""

import pytest

from rlhf.training import grpo, rloo
from rlhf.training.common import pairs_to_text, read_jsonl, read_pairs
from rlhf.training.rewards import RewardModelFn, letter_e
from rlhf.training.specs import GRPOSpec, RLOOSpec

pytestmark = pytest.mark.training

LETTER_E = "rlhf.training.rewards:letter_e"


def _spec(cls, tiny, out, **kw):
    base = dict(output_dir=str(out), model=str(tiny.policy), prompts_file=str(tiny.prompts),
                reward_function=LETTER_E, lr=3e-2, batch_size=16, num_generations=4, max_new_tokens=8,
                max_length=64)
    return cls(**{**base, **kw})


def test_grpo_raises_the_reward(tiny, tmp_path):
    m = grpo.run(_spec(GRPOSpec, tiny, tmp_path / "g", max_steps=20))
    assert m["steps"] == 20
    assert m["reward_first"] < 0.15 and m["reward_last"] > 2 * m["reward_first"]
    progress = read_jsonl(tmp_path / "g" / "progress.jsonl")
    assert len(progress) == 20 and "reward" in progress[0]
    assert (tmp_path / "g" / "adapter" / "adapter_model.safetensors").is_file()


def test_rloo_raises_the_reward(tiny, tmp_path):
    m = rloo.run(_spec(RLOOSpec, tiny, tmp_path / "r", max_steps=24))
    assert m["steps"] == 24
    assert m["reward_first"] < 0.15 and m["reward_last"] > 2 * m["reward_first"]


def test_reward_model_function_scores_like_the_reward_job(tiny, trained_reward):
    """The wrapper GRPO/RLOO/PPO use builds texts exactly as the reward job trained on them: it ranks the
    held-out pairs as well as the job's own evaluation did."""
    fn = RewardModelFn(str(trained_reward.out / "model"), device=__import__("torch").device("cpu"), max_length=64)
    rows, _ = pairs_to_text(fn.tok, read_pairs(tiny.eval_pairs), 64)
    prompts = [r["prompt"] for r in rows]
    chosen, rejected = fn(prompts, [r["chosen"] for r in rows]), fn(prompts, [r["rejected"] for r in rows])
    accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(rows)
    assert accuracy == trained_reward.metrics["eval_accuracy_after"]


def test_grpo_with_a_reward_model_on_chat_prompts(tiny, trained_reward, tmp_path):
    spec = _spec(GRPOSpec, tiny, tmp_path / "g", prompts_file=str(tiny.chat_prompts), reward_function=None,
                 reward_model=str(trained_reward.out / "model"), max_steps=2, batch_size=8, beta=0.05)
    m = grpo.run(spec)
    assert m["steps"] == 2 and m["reward_first"] == pytest.approx(m["reward_first"])  # finite, not NaN


def test_builtin_reward_functions():
    assert letter_e(None, ["eeee", "abcd", [{"role": "assistant", "content": "ee"}]]) == [1.0, 0.0, 1.0]
