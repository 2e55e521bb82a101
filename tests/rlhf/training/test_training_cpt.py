import json

import pytest
import torch

from rlhf.training import run_job
from rlhf.training.causal_lm import pack, perplexity_of, read_corpus, token_stream
from rlhf.training.common import write_jsonl
from rlhf.training.models import load_policy, load_tokenizer
from rlhf.training.specs import spec_from_dict
from rlhf.training.tiny import corpus

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def domain(real_data, tmp_path_factory):
    """Shakespeare as the 'domain' (the tiny model never saw it) and the tiny corpus as 'general' text."""
    root = tmp_path_factory.mktemp("cpt")
    lines = (real_data / "corpus_tinyshakespeare.txt").read_text().split("\n")
    write_jsonl(root / "domain.jsonl", [{"text": "\n".join(lines[i : i + 20])} for i in range(0, 400, 20)])
    (root / "general.txt").write_text(corpus(60, seed=7))
    return root


def _spec(tiny, domain, out, **kw):
    return spec_from_dict({"kind": "cpt", "output_dir": str(out), "model": str(tiny.policy),
                           "train_file": str(domain / "domain.jsonl"), "general_file": str(domain / "general.txt"),
                           "max_length": 64, "batch_size": 8, "max_steps": 15, "max_eval_blocks": 8, **kw})


def test_full_continued_pretraining_lowers_domain_perplexity(tiny, domain, tmp_path):
    m = run_job(_spec(tiny, domain, tmp_path / "full", peft="full", lr=3e-3))
    assert m["trainable_params"] == m["total_params"]
    assert m["eval_perplexity_after"] < 0.5 * m["eval_perplexity_before"]
    # Full training on other text moves the general set: the number the forgetting report watches.
    assert m["general_perplexity_after"] != pytest.approx(m["general_perplexity_before"], rel=1e-3)
    assert (tmp_path / "full" / "model" / "model.safetensors").is_file()


# Prefix tuning (1,024 parameters here: 4 keys/values per layer) moves a 64-token block least in 15 steps.
@pytest.mark.parametrize(("peft", "lr", "ratio"), [("lora", 1e-2, 0.9), ("ia3", 5e-2, 0.9),
                                                   ("prompt_tuning", 5e-2, 0.9), ("prefix_tuning", 1e-1, 0.98)])
def test_each_peft_method_trains_a_small_adapter_that_lowers_perplexity(tiny, domain, tmp_path, peft, lr, ratio):
    m = run_job(_spec(tiny, domain, tmp_path / peft, peft=peft, lr=lr, num_virtual_tokens=4))
    assert 0 < m["trainable_params"] < 0.3 * m["total_params"]
    assert m["eval_perplexity_after"] < ratio * m["eval_perplexity_before"], m
    assert (tmp_path / peft / "adapter" / "adapter_config.json").is_file()


def test_lora_adapters_merge_export_and_stack(tiny, domain, tmp_path):
    first = run_job(_spec(tiny, domain, tmp_path / "a", peft="lora", lr=1e-2, save_merged=True))
    second = run_job(_spec(tiny, domain, tmp_path / "b", peft="lora", lr=1e-2, seed=1, save_merged=True,
                           model=first["model_dir"]))
    tok = load_tokenizer(str(tiny.policy))
    blocks = pack(token_stream(tok, read_corpus(domain / "domain.jsonl")), 64)[-8:]
    ppl = lambda path: perplexity_of(load_policy(path), blocks, 8, torch.device("cpu"))  # noqa: E731

    merge = run_job(spec_from_dict({"kind": "merge", "output_dir": str(tmp_path / "m"), "model": str(tiny.policy),
                                    "adapters": [first["adapter_dir"], second["adapter_dir"]]}))
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert [a["peft_type"] for a in manifest["adapters"]] == ["LORA", "LORA"]
    assert len(manifest["adapters"][0]["sha256"]) == 64 and "model.safetensors" in manifest["files"]
    # Base + adapter A + adapter B merged in one go equals B trained on top of A's merged export.
    stacked = ppl(merge["model_dir"])
    assert stacked == pytest.approx(ppl(second["model_dir"]), rel=1e-4)
    assert stacked < ppl(first["model_dir"]) < ppl(str(tiny.policy))


def test_prompt_tuning_adapters_cannot_be_merged(tiny, domain, tmp_path):
    with pytest.raises(ValueError, match="save_merged"):
        _spec(tiny, domain, tmp_path / "x", peft="prompt_tuning", save_merged=True)
