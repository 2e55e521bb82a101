import json

import pytest

from rlhf.training import reward
from rlhf.training.common import pairs_to_text, read_jsonl, read_pairs, write_jsonl
from rlhf.training.evaluate import pairwise_accuracy
from rlhf.training.models import MINILM, load_reward_model, load_tokenizer
from rlhf.training.specs import RewardSpec

pytestmark = pytest.mark.training


def test_reward_model_learns_the_preference_rule(tiny, trained_reward):
    m, out, seen = trained_reward.metrics, trained_reward.out, trained_reward.progress_seen

    assert m["steps"] == 30 and m["train_pairs_dropped_by_trainer"] == 0
    assert m["loss_last"] < 0.1 < m["loss_first"]
    assert m["eval_accuracy_before"] < 0.75 and m["eval_accuracy_after"] >= 0.95  # 0.59 -> 0.97 here
    assert m["eval_margin_after"] > m["eval_margin_before"] + 1
    assert json.loads((out / "metrics.json").read_text()) == m
    progress = read_jsonl(out / "progress.jsonl")
    assert [p["step"] for p in progress] == list(range(1, 31)) and seen == progress
    assert {"loss", "steps_per_s", "eta_s", "accuracy"} <= set(progress[0])
    assert progress[0]["loss"] > 0.6  # ~log 2: an untrained head cannot tell the responses apart

    # Both artifacts score the held-out pairs like the trained model did: the adapter on a freshly loaded base
    # (portable: no absolute path needed) and the merged folder GRPO/RLOO/PPO load by path.
    tok = load_tokenizer(str(tiny.reward))
    rows, _ = pairs_to_text(tok, read_pairs(tiny.eval_pairs), 64)
    adapted = load_reward_model(str(tiny.reward), adapter=str(out / "adapter"), tokenizer=tok)
    merged = load_reward_model(str(out / "model"), tokenizer=tok)
    for model in (adapted, merged):
        acc = pairwise_accuracy(model, tok, rows, max_length=64)
        assert acc["accuracy"] == m["eval_accuracy_after"]
        assert acc["margin"] == pytest.approx(m["eval_margin_after"], rel=1e-3)


def test_margin_column_enters_the_loss(tiny, tmp_path):
    rows = read_jsonl(tiny.train_pairs)[:16]
    for row in rows[1:]:  # row 0 has none: it gets 0.0, so no batch silently loses its margins
        row["margin"] = 5.0
    write_jsonl(tmp_path / "m.jsonl", rows)
    spec = RewardSpec(output_dir=str(tmp_path / "out"), model=str(tiny.reward), train_file=str(tmp_path / "m.jsonl"),
                      max_steps=1, batch_size=4, max_length=64, save_merged=False)
    reward.run(spec)
    first = read_jsonl(tmp_path / "out" / "progress.jsonl")[0]
    assert first["loss"] > 3.5  # -log sigmoid(~0 - 5) ~ 5.0 per annotated row, versus log 2 ~ 0.69 without


def test_overlong_pairs_are_shortened_not_dropped(tiny, tmp_path):
    rows = read_jsonl(tiny.train_pairs)[:8]
    for row in rows:
        row["prompt"] = "An old earlier turn of the talk. " * 20 + row["prompt"]
    write_jsonl(tmp_path / "long.jsonl", rows)
    spec = RewardSpec(output_dir=str(tmp_path / "out"), model=str(tiny.reward), train_file=str(tmp_path / "long.jsonl"),
                      max_steps=1, batch_size=4, max_length=48, save_merged=False)
    m = reward.run(spec)
    assert m["train_pairs"] == 8 and m["train_pairs_shortened"] == 8 and m["train_pairs_dropped_by_trainer"] == 0


def test_minilm_reward_on_real_hh_pairs(real_data, tmp_path):
    """End to end on the shipped MiniLM backbone (BERT: eos = [SEP]) and a slice of real HH pairs, most of
    them longer than the budget. A few steps cannot learn HH; this checks the pipeline, not the quality."""
    pairs = read_jsonl(real_data / "hh_pairs_train.jsonl")
    write_jsonl(tmp_path / "train.jsonl", pairs[:32])
    write_jsonl(tmp_path / "eval.jsonl", pairs[-16:])
    spec = RewardSpec(output_dir=str(tmp_path / "hh"), model=MINILM, train_file=str(tmp_path / "train.jsonl"),
                      eval_file=str(tmp_path / "eval.jsonl"), max_steps=4, lr=5e-4, batch_size=8, max_length=64,
                      save_merged=False)
    m = reward.run(spec)
    assert m["steps"] == 4 and m["train_pairs"] == 32 and m["train_pairs_dropped_by_trainer"] == 0
    assert m["train_pairs_shortened"] > 16  # HH transcripts rarely fit 64 tokens: they were cut, not dropped
    assert 0.0 <= m["eval_accuracy_after"] <= 1.0 and m["loss_last"] == pytest.approx(m["loss_last"])
    assert (tmp_path / "hh" / "adapter" / "adapter_model.safetensors").is_file()
    assert load_tokenizer(MINILM).eos_token == "[SEP]"
