import json

import pytest

from rlhf.training import run_job
from rlhf.training.common import read_jsonl
from rlhf.training.models import load_policy, load_tokenizer
from rlhf.training.specs import spec_from_dict

pytestmark = pytest.mark.training


def test_pretraining_from_scratch_learns_shakespeare(real_data, tmp_path):
    spec = spec_from_dict({
        "kind": "pretrain", "output_dir": str(tmp_path / "pt"), "train_file": str(real_data / "corpus_tinyshakespeare.txt"),
        "max_train_rows": 1200, "vocab_size": 400, "hidden_size": 64, "num_layers": 2, "num_heads": 4,
        "max_length": 64, "batch_size": 8, "max_steps": 30, "eval_every": 10, "max_eval_blocks": 8,
    })
    m = run_job(spec)

    # Random init predicts about uniformly over the vocabulary; 30 steps must beat that by far.
    assert m["vocab_size"] == 400 and m["eval_perplexity_before"] > 300
    assert m["eval_perplexity_after"] < m["eval_perplexity_before"] / 2
    assert m["loss_last"] < m["loss_first"] - 0.5
    curve = json.loads((tmp_path / "pt" / "loss_curve.json").read_text())
    assert [r["step"] for r in curve] == list(range(1, 31))
    assert [r["step"] for r in curve if "eval_loss" in r] == [10, 20, 30]
    assert (tmp_path / "pt" / "loss_curve.svg").read_text().startswith("<svg")
    assert len(read_jsonl(tmp_path / "pt" / "progress.jsonl")) == 30

    # The result is a base model other jobs load by path, tokenizer (with a chat template) included.
    tok = load_tokenizer(m["model_dir"])
    model = load_policy(m["model_dir"])
    assert tok.chat_template and tok.decode(tok("ROMEO: thou art")["input_ids"]) == "ROMEO: thou art"
    assert model.config.num_hidden_layers == 2


def test_pretrain_spec_rejects_a_peft_method_and_bad_heads():
    base = {"kind": "pretrain", "output_dir": "o", "train_file": "t"}
    with pytest.raises(ValueError, match="peft: must be 'full'"):
        spec_from_dict({**base, "peft": "lora"})
    with pytest.raises(ValueError, match="num_heads: must divide hidden_size"):
        spec_from_dict({**base, "hidden_size": 30, "num_heads": 4})
