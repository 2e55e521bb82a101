import pytest
from transformers import AutoModelForCausalLM

from rlhf.training.common import fit_pair, pairs_to_text
from rlhf.training.models import load_tokenizer
from rlhf.training.tiny import count_params

pytestmark = pytest.mark.training


def test_tiny_policy_loads_with_template_and_pad(tiny):
    tok = load_tokenizer(str(tiny.policy))
    model = AutoModelForCausalLM.from_pretrained(tiny.policy)
    assert 100_000 < count_params(model) < 4_000_000
    assert tok.pad_token != tok.eos_token and tok.eos_token == "<|im_end|>"
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert tok.decode(tok("Hello, world!")["input_ids"]) == "Hello, world!"


def test_fit_pair_cuts_prompt_from_the_left(tiny):
    tok = load_tokenizer(str(tiny.policy))
    prompt = "first turn is old. " * 30 + "Last question?"
    p, c, r, cut = fit_pair(tok, prompt, " yes", " no", max_length=32)
    assert cut and p.endswith("Last question?") and len(p) < len(prompt)
    assert c == " yes" + tok.eos_token
    assert len(tok(p + c)["input_ids"]) <= 32 and len(tok(p + r)["input_ids"]) <= 32


def test_fit_pair_cuts_an_overlong_response_after_the_prompt_floor(tiny):
    tok = load_tokenizer(str(tiny.policy))
    p, c, r, cut = fit_pair(tok, "Q?", " word" * 200, " no", max_length=40)
    assert cut and p == "Q?" and c.endswith(tok.eos_token)
    assert len(tok(p + c)["input_ids"]) <= 40


def test_pairs_to_text_renders_chat_and_keeps_margin(tiny):
    tok = load_tokenizer(str(tiny.policy))
    rows = [{"prompt": [{"role": "user", "content": "hi"}], "chosen": "a", "rejected": "b", "margin": 2}]
    out, cut = pairs_to_text(tok, rows, 64)
    assert cut == 0 and out[0]["prompt"].startswith("<|im_start|>user") and out[0]["margin"] == 2.0
