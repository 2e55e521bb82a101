import pytest

from rlhf.training import run_job
from rlhf.training.common import write_jsonl
from rlhf.training.specs import spec_from_dict
from rlhf.training.tiny import synthetic_pairs

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    """Instructions answered with friendly words: one plain prompt/response file, one chat file, a held-out set."""
    root = tmp_path_factory.mktemp("sft")
    write_jsonl(root / "plain.jsonl", [{"prompt": r["prompt"], "response": r["chosen"]} for r in synthetic_pairs(48, 1)])
    write_jsonl(root / "chat.jsonl", [{"messages": [{"role": "user", "content": r["prompt"]},
                                                    {"role": "assistant", "content": r["chosen"]}]}
                                      for r in synthetic_pairs(16, 2)])
    write_jsonl(root / "eval.jsonl", [{"prompt": r["prompt"], "response": r["chosen"]} for r in synthetic_pairs(16, 3)])
    return root


def test_sft_lora_on_a_weighted_mixture_learns_the_completions_only(tiny, sft_data, tmp_path):
    spec = spec_from_dict({
        "kind": "sft", "output_dir": str(tmp_path / "sft"), "model": str(tiny.policy), "peft": "lora", "lr": 1e-2,
        "datasets": [{"path": str(sft_data / "plain.jsonl"), "weight": 3},
                     {"path": str(sft_data / "chat.jsonl"), "weight": 1, "name": "chat"}],
        "mixture_size": 40, "eval_file": str(sft_data / "eval.jsonl"), "max_steps": 15, "batch_size": 8,
        "max_length": 64, "eval_generate": 4, "max_new_tokens": 8,
    })
    m = run_job(spec)

    assert m["rows_per_dataset"] == {"plain": 30, "chat": 10} and m["train_rows"] == 40
    # Prompt tokens (chat template included) are masked out of the loss: most tokens here are prompt.
    assert 0.5 < m["prompt_token_share_masked"] < 0.95
    assert m["loss_last"] < m["loss_first"]
    assert m["eval_completion_perplexity_after"] < 0.5 * m["eval_completion_perplexity_before"]
    assert 0 <= m["eval_rouge1_after"] <= 1 and 0 <= m["eval_bleu_after"] <= 100
    assert m["adapter_dir"].endswith("adapter")


def test_sft_full_finetune_on_the_shared_instruction_data(real_data, tiny, tmp_path):
    spec = spec_from_dict({
        "kind": "sft", "output_dir": str(tmp_path / "sft"), "model": str(tiny.policy), "peft": "full", "lr": 3e-3,
        "datasets": [{"path": str(real_data / "instruct_prompt_response.jsonl"), "max_rows": 48}],
        "eval_file": str(tiny.root / "sft_eval.jsonl"), "max_steps": 8, "batch_size": 8, "max_length": 96,
        "completion_only_loss": False,
    })
    write_jsonl(tiny.root / "sft_eval.jsonl",
                [{"prompt": "Give three tips for staying healthy.", "response": "Eat well, sleep, and move."}])
    m = run_job(spec)
    assert m["prompt_token_share_masked"] == 0.0 and m["trainable_params"] == m["total_params"]
    assert m["loss_last"] < m["loss_first"] and m["model_dir"].endswith("model")


def test_sft_rejects_a_mixture_without_datasets_and_bad_rows(tiny, tmp_path):
    with pytest.raises(ValueError, match="datasets: needs at least one"):
        spec_from_dict({"kind": "sft", "output_dir": "o", "model": "m"})
    write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "hi"}])
    spec = spec_from_dict({"kind": "sft", "output_dir": str(tmp_path / "o"), "model": str(tiny.policy),
                           "datasets": [{"path": str(tmp_path / "bad.jsonl")}]})
    with pytest.raises(ValueError, match="bad.jsonl: row 1: needs 'prompt'"):
        run_job(spec)
