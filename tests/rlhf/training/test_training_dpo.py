import math

import pytest

from rlhf.training import dpo
from rlhf.training.common import pairs_to_text, read_jsonl, read_pairs, write_jsonl
from rlhf.training.evaluate import preference_eval
from rlhf.training.models import load_policy, load_tokenizer
from rlhf.training.specs import DPOSpec
from rlhf.training.tiny import synthetic_pairs

pytestmark = pytest.mark.training


def test_dpo_learns_the_preference_rule(tiny, tmp_path):
    out = tmp_path / "dpo"
    spec = DPOSpec(output_dir=str(out), model=str(tiny.policy), train_file=str(tiny.train_pairs),
                   eval_file=str(tiny.eval_pairs), max_steps=20, lr=1e-2, batch_size=8, max_length=64, beta=0.1)
    m = dpo.run(spec)

    first = read_jsonl(out / "progress.jsonl")[0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at step 1
    assert m["loss_last"] < 0.55 and m["train_pairs_dropped_by_trainer"] == 0
    assert m["eval_reward_accuracy_before"] == 0.0 and m["eval_reward_margin_before"] == 0.0
    assert m["eval_reward_accuracy_after"] >= 0.9 and m["eval_reward_margin_after"] > 0.2
    assert m["eval_logp_accuracy_before"] < 0.7 < 0.9 <= m["eval_logp_accuracy_after"]

    # The saved adapter on a freshly loaded base reproduces the trained policy.
    tok = load_tokenizer(str(tiny.policy))
    rows, _ = pairs_to_text(tok, read_pairs(tiny.eval_pairs), 64)
    reloaded = load_policy(str(tiny.policy), adapter=str(out / "adapter"))
    again = preference_eval(reloaded, tok, rows, beta=0.1, max_length=64)
    assert again["reward_margin"] == pytest.approx(m["eval_reward_margin_after"], rel=1e-3)


def test_dpo_continues_from_an_adapter_and_uses_it_as_reference(tiny, tmp_path):
    first = dpo.run(DPOSpec(output_dir=str(tmp_path / "a"), model=str(tiny.policy), train_file=str(tiny.train_pairs),
                            max_steps=3, lr=1e-2, max_length=64))
    assert first["steps"] == 3
    spec = DPOSpec(output_dir=str(tmp_path / "b"), model=str(tiny.policy), train_file=str(tiny.train_pairs),
                   adapter=str(tmp_path / "a" / "adapter"), max_steps=2, lr=1e-2, max_length=64)
    dpo.run(spec)
    # TRL freezes a copy of the starting adapter as reference: the first loss is log 2 again, not lower.
    assert read_jsonl(tmp_path / "b" / "progress.jsonl")[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert (tmp_path / "b" / "adapter" / "adapter_model.safetensors").is_file()


def test_dpo_on_chat_prompts(tiny, tmp_path):
    write_jsonl(tmp_path / "chat.jsonl", synthetic_pairs(8, seed=5, chat=True))
    m = dpo.run(DPOSpec(output_dir=str(tmp_path / "c"), model=str(tiny.policy), train_file=str(tmp_path / "chat.jsonl"),
                        max_steps=2, batch_size=4, max_length=64, loss_type="ipo"))
    assert m["steps"] == 2 and m["train_pairs"] == 8
