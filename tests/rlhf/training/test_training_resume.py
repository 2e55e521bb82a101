"""Resume after an interruption: a job stopped after a checkpoint (an exception from its progress callback at step
k, as when a worker dies or a cancel arrives) and started again on the same spec and folder continues from the
newest checkpoint, and ends where an uninterrupted run with the same seed ends."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from rlhf.training import checkpoints, run_job
from rlhf.training.common import read_jsonl
from rlhf.training.specs import DPOSpec, PPOSpec, RewardSpec, spec_from_dict

pytestmark = pytest.mark.training


class Interrupted(Exception):
    pass


def _stop_at(step: int):
    def progress(rec: dict) -> None:
        if rec["step"] == step and "resumed_from_step" not in rec:
            raise Interrupted(f"stopped at step {step}")

    return progress


def _interrupt_then_resume(spec, stop: int) -> tuple[dict, list[dict]]:
    with pytest.raises(Interrupted):
        run_job(spec, progress=_stop_at(stop))
    seen: list[dict] = []
    return run_job(spec, progress=seen.append), seen


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _assert_resumed(out, metrics: dict, seen: list[dict], at: int, total: int) -> None:
    assert metrics["resumed_from_step"] == at
    # The first record announces the resume; the steps then continue from the checkpoint, not from 1.
    assert seen[0]["resumed_from_step"] == at and seen[0]["step"] == at
    assert [r["step"] for r in seen[1:]] == list(range(at + 1, total + 1))
    steps = [r["step"] for r in read_jsonl(out / "progress.jsonl") if "resumed_from_step" not in r]
    assert steps == list(range(1, total + 1))  # the log keeps the steps before the checkpoint, once
    assert not list(out.glob("checkpoint-*"))  # a finished job keeps no checkpoints


def test_dpo_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_run(tiny, tmp_path):
    def spec(name):
        return DPOSpec(output_dir=str(tmp_path / name), model=str(tiny.policy), train_file=str(tiny.train_pairs),
                       max_steps=6, lr=1e-2, batch_size=4, max_length=64, beta=0.1, checkpoint_every=2)

    whole = run_job(spec("whole"))
    # Transformers logs a step before it saves that step's checkpoint: stopped at 5, the newest is checkpoint-4.
    resumed, seen = _interrupt_then_resume(spec("cut"), stop=5)
    _assert_resumed(tmp_path / "cut", resumed, seen, at=4, total=6)
    assert whole["resumed_from_step"] == 0 and resumed["steps"] == whole["steps"] == 6
    # Same data order, RNG and optimizer state: only float summation order can differ.
    assert _max_diff(_weights(tmp_path / "whole" / "adapter"), _weights(tmp_path / "cut" / "adapter")) < 1e-5
    assert resumed["loss_last"] == pytest.approx(whole["loss_last"], abs=1e-4)


def test_dpo_continuing_a_parent_adapter_resumes_with_its_reference(tiny, tmp_path):
    """The loop's DPO trains the parent's adapter further with a frozen copy of it ("ref") as the reference; the
    checkpoint holds both, and the resumed run ends where the uninterrupted one does."""
    def spec(name, **kw):
        return DPOSpec(output_dir=str(tmp_path / name), model=str(tiny.policy), train_file=str(tiny.train_pairs),
                       lr=1e-2, batch_size=4, max_length=64, **kw)

    run_job(spec("parent", max_steps=2))
    parent = str(tmp_path / "parent" / "adapter")
    run_job(spec("whole", max_steps=4, adapter=parent, checkpoint_every=2))
    resumed, seen = _interrupt_then_resume(spec("cut", max_steps=4, adapter=parent, checkpoint_every=2), stop=3)
    _assert_resumed(tmp_path / "cut", resumed, seen, at=2, total=4)
    assert _max_diff(_weights(tmp_path / "whole" / "adapter"), _weights(tmp_path / "cut" / "adapter")) < 1e-5


def test_reward_training_resumes_from_its_last_checkpoint(tiny, tmp_path):
    def spec(name):
        return RewardSpec(output_dir=str(tmp_path / name), model=str(tiny.reward), train_file=str(tiny.train_pairs),
                          max_steps=10, lr=3e-3, batch_size=8, max_length=64, checkpoint_every=4, save_merged=False)

    whole = run_job(spec("whole"))
    resumed, seen = _interrupt_then_resume(spec("cut"), stop=9)
    _assert_resumed(tmp_path / "cut", resumed, seen, at=8, total=10)
    assert _max_diff(_weights(tmp_path / "whole" / "adapter"), _weights(tmp_path / "cut" / "adapter")) < 1e-5
    assert resumed["loss_last"] == pytest.approx(whole["loss_last"], abs=1e-4)


def test_ppo_resumes_from_its_own_checkpoint_bit_for_bit(tiny, tmp_path):
    def spec(name):
        return PPOSpec(output_dir=str(tmp_path / name), model=str(tiny.policy), prompts_file=str(tiny.prompts),
                       reward_function="rlhf.training.rewards:letter_e", max_steps=6, lr=1e-2, rollout_batch_size=8,
                       max_new_tokens=6, max_length=64, ppo_epochs=2, num_minibatches=2, checkpoint_every=2)

    whole = run_job(spec("whole"))
    # PPO saves before it reports a step: stopped at 5, the newest checkpoint is 4.
    resumed, seen = _interrupt_then_resume(spec("cut"), stop=5)
    _assert_resumed(tmp_path / "cut", resumed, seen, at=4, total=6)
    # The checkpoint holds the adapter, value head, optimizer, sampling RNG and prompt order: nothing differs.
    assert _max_diff(_weights(tmp_path / "whole" / "adapter"), _weights(tmp_path / "cut" / "adapter")) == 0.0
    assert (resumed["score_first"], resumed["score_last"], resumed["kl_last"]) == (
        whole["score_first"], whole["score_last"], whole["kl_last"])


def test_pretraining_resumes_with_the_same_loss_curve(tmp_path):
    from rlhf.training.tiny import corpus

    (tmp_path / "corpus.txt").write_text(corpus(400, seed=0), encoding="utf-8")

    def spec(name):
        return spec_from_dict({
            "kind": "pretrain", "output_dir": str(tmp_path / name), "train_file": str(tmp_path / "corpus.txt"),
            "vocab_size": 400, "hidden_size": 32, "num_layers": 1, "num_heads": 2, "max_length": 32,
            "batch_size": 4, "max_steps": 8, "max_eval_blocks": 4, "checkpoint_every": 3})

    whole = run_job(spec("whole"))
    resumed, seen = _interrupt_then_resume(spec("cut"), stop=7)
    _assert_resumed(tmp_path / "cut", resumed, seen, at=6, total=8)
    curve = [{k: r[k] for k in ("step", "loss", "lr")} for r in json.loads((tmp_path / "cut" / "loss_curve.json").read_text())]
    expected = [{k: r[k] for k in ("step", "loss", "lr")} for r in json.loads((tmp_path / "whole" / "loss_curve.json").read_text())]
    assert curve == expected
    assert resumed["eval_perplexity_after"] == whole["eval_perplexity_after"]


def test_a_checkpoint_of_another_spec_or_without_its_marker_is_not_resumed(tiny, tmp_path):
    spec = RewardSpec(output_dir=str(tmp_path / "r"), model=str(tiny.reward), train_file=str(tiny.train_pairs),
                      max_steps=6, batch_size=8, max_length=64, checkpoint_every=2, save_merged=False)
    with pytest.raises(Interrupted):
        run_job(spec, progress=_stop_at(5))
    assert checkpoints.find_resume(spec.output_dir, spec).step == 4
    other = RewardSpec(**{**spec.__dict__, "lr": spec.lr * 2})
    assert checkpoints.find_resume(spec.output_dir, other) is None  # another spec never resumes this folder
    (tmp_path / "r" / "checkpoint-4" / checkpoints.MARKER).unlink()  # as if the worker died while saving it
    assert checkpoints.find_resume(spec.output_dir, spec).step == 2
    # Only the folder moved or the checkpoint frequency changed: still the same training, still resumed.
    moved = RewardSpec(**{**spec.__dict__, "checkpoint_every": 3})
    assert checkpoints.find_resume(spec.output_dir, moved).step == 2
    # A fresh start on another spec clears the stale checkpoints and the progress log.
    m = run_job(RewardSpec(**{**other.__dict__, "checkpoint_every": 0}))
    assert m["resumed_from_step"] == 0 and not list((tmp_path / "r").glob("checkpoint-*"))
    assert [r["step"] for r in read_jsonl(tmp_path / "r" / "progress.jsonl")] == list(range(1, 7))
