import pytest
import torch

from rlhf.training import ppo
from rlhf.training.common import read_jsonl
from rlhf.training.specs import PPOSpec

pytestmark = pytest.mark.training


def test_gae_matches_a_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 0.4, 9.0]])  # position 3 is padding after eos: its value must not leak
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    adv, ret = ppo.gae(rewards, values, mask, gamma=0.9, lam=0.5)
    d2 = 1.0 - 0.4
    d1 = 0.0 + 0.9 * 0.4 - 0.2
    d0 = 0.0 + 0.9 * 0.2 - 0.5
    a2, a1 = d2, d1 + 0.45 * d2
    expected = torch.tensor([[d0 + 0.45 * a1, a1, a2, 0.0]])
    assert torch.allclose(adv, expected) and torch.allclose(ret, expected + values)


def test_response_mask_keeps_the_first_eos_and_drops_what_follows():
    resp = torch.tensor([[5, 6, 2, 0, 0], [5, 6, 7, 8, 9], [2, 0, 0, 0, 0]])
    assert ppo.response_mask(resp, eos_id=2).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


def test_ppo_raises_the_reward_with_clipped_updates(tiny, tmp_path):
    spec = PPOSpec(output_dir=str(tmp_path / "p"), model=str(tiny.policy), prompts_file=str(tiny.prompts),
                   reward_function="rlhf.training.rewards:letter_e", max_steps=20, lr=1e-2, rollout_batch_size=16,
                   max_new_tokens=8, max_length=64, beta=0.0, ppo_epochs=4, num_minibatches=1)
    m = ppo.run(spec)
    progress = read_jsonl(tmp_path / "p" / "progress.jsonl")
    assert m["steps"] == 20 and len(progress) == 20
    # The tiny model is hypersensitive (half the tokens hit the 0.2 clip), so PPO climbs slower than GRPO.
    assert m["score_first"] < 0.1 and m["score_last"] > 1.5 * m["score_first"]
    assert progress[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # first rollout: policy == reference
    assert m["kl_last"] > 0 and any(p["clipfrac"] > 0 for p in progress)  # later epochs hit the clip
    assert (tmp_path / "p" / "value_head.pt").is_file()
    assert (tmp_path / "p" / "adapter" / "adapter_model.safetensors").is_file()


def test_ppo_with_the_trained_reward_model(tiny, trained_reward, tmp_path):
    spec = PPOSpec(output_dir=str(tmp_path / "p"), model=str(tiny.policy), prompts_file=str(tiny.chat_prompts),
                   reward_model=str(trained_reward.out / "model"), max_steps=2, rollout_batch_size=4,
                   max_new_tokens=6, max_length=64)
    m = ppo.run(spec)
    assert m["steps"] == 2 and m["score_first"] == pytest.approx(m["score_first"])  # finite
