import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlhf.training.common import pairs_to_text, read_pairs
from rlhf.training.evaluate import bootstrap_ci, perplexity, win_rate
from rlhf.training.models import load_reward_model, load_tokenizer

pytestmark = pytest.mark.training


def test_win_rate_of_chosen_over_rejected_under_the_trained_reward(tiny, trained_reward):
    path = str(trained_reward.out / "model")
    tok = load_tokenizer(path)
    model = load_reward_model(path, tokenizer=tok)
    rows, _ = pairs_to_text(tok, read_pairs(tiny.eval_pairs), 64)
    prompts = [r["prompt"] for r in rows]
    chosen, rejected = [r["chosen"] for r in rows], [r["rejected"] for r in rows]
    ab = win_rate(model, tok, prompts, chosen, rejected, max_length=64)
    assert ab["win_rate"] == trained_reward.metrics["eval_accuracy_after"] and ab["n"] == 32
    assert ab["ci_low"] <= ab["win_rate"] <= ab["ci_high"]
    ba = win_rate(model, tok, prompts, rejected, chosen, max_length=64)
    assert ba["win_rate"] == pytest.approx(1 - ab["win_rate"])


def test_bootstrap_ci_brackets_the_mean():
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    low, high = bootstrap_ci([0.0, 1.0] * 50, seed=1)
    assert 0.35 < low < 0.5 < high < 0.65


def test_perplexity_equals_exp_of_the_model_loss(tiny):
    tok = load_tokenizer(str(tiny.policy))
    model = AutoModelForCausalLM.from_pretrained(tiny.policy)
    text = "The cat and the dog walk by the river."
    with torch.no_grad():
        ids = tok(text, return_tensors="pt")["input_ids"]
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert perplexity(model, tok, [text]) == pytest.approx(math.exp(loss), rel=1e-4)
    # Padding in a batch must not change the result for the same texts.
    both = perplexity(model, tok, [text, "Hi."])
    assert math.isfinite(both) and both > 1
