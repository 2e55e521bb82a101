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
    # The tiny model is hypersensitive: one AdamW step at lr 1e-2 moves it by about 0.5 nats per token, so after
    # the first minibatch most tokens hit the 0.2 clip and PPO climbs slower than GRPO (the rollout's log-probs
    # match the update pass exactly: see the dropout test below).
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


def test_the_first_update_sees_exactly_the_rollout_log_probs_even_with_dropout(tiny, tmp_path):
    """Before the first optimizer step pi == pi_old, so the ratio must be 1 on every token: the update pass runs
    the model as the rollout did (dropout off, same padding and positions), or tokens hit the clip for nothing."""
    from rlhf.training.generate import encode_prompts
    from rlhf.training.models import load_tokenizer
    from rlhf.training.rewards import build_reward
    from rlhf.training.specs import LoraSpec

    spec = PPOSpec(output_dir=str(tmp_path / "p"), model=str(tiny.policy), prompts_file=str(tiny.prompts),
                   reward_function="rlhf.training.rewards:letter_e", rollout_batch_size=8, max_new_tokens=8,
                   max_length=64, ppo_epochs=1, num_minibatches=1, lora=LoraSpec(dropout=0.5))
    tok = load_tokenizer(spec.model, padding_side="left")
    prompts = [r["prompt"] for r in read_jsonl(tiny.prompts)]
    device = torch.device("cpu")
    model, head, optimizer = ppo.build_policy(spec, torch.float32, device)
    reward_fn, gen = build_reward(None, spec.reward_function, device, 64), torch.Generator().manual_seed(0)
    # Two iterations: LoRA's B starts at zero, so dropout only changes the output once a step has moved it.
    for _ in range(2):
        ro = ppo.rollout(model, head, tok, reward_fn, prompts, encode_prompts(tok, prompts, 56), spec, device)
        assert ro.resp_mask.sum() > len(prompts)  # responses of more than one token
        stats = ppo.update(model, head, optimizer, ro, spec, gen)  # one minibatch: its stats precede its step
        assert stats["approx_kl"] == 0.0 and stats["clipfrac"] == 0.0


def test_a_larger_kl_coefficient_keeps_the_policy_closer_to_the_reference(tiny, tmp_path):
    def mean_kl(beta: float) -> float:
        out = tmp_path / f"beta{beta}"
        ppo.run(PPOSpec(output_dir=str(out), model=str(tiny.policy), prompts_file=str(tiny.prompts),
                        reward_function="rlhf.training.rewards:letter_e", beta=beta, max_steps=12, lr=3e-3,
                        rollout_batch_size=8, max_new_tokens=6, max_length=64, ppo_epochs=2, num_minibatches=1))
        late = read_jsonl(out / "progress.jsonl")[6:]  # KL(policy || reference) of the samples, last 6 steps
        return sum(r["kl"] for r in late) / len(late)

    small, large = mean_kl(0.02), mean_kl(2.0)
    # Measured here: 1.43 vs 0.60 nats per response (with beta 0 vs 2 and seeds 0, 1, 2: ratios 0.47, 0.40, 0.15).
    assert small > 0.3 and large < 0.7 * small
