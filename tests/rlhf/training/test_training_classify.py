import pytest

from rlhf.training import run_job
from rlhf.training.common import write_jsonl
from rlhf.training.specs import spec_from_dict
from rlhf.training.tiny import synthetic_pairs

pytestmark = pytest.mark.training


def _rows(n, seed):
    """Friendly vs unfriendly answers (the tiny tests' preference rule) as a two-class problem."""
    rows = []
    for r in synthetic_pairs(n, seed):
        rows += [{"text": r["chosen"], "label": "friendly"}, {"text": r["rejected"], "label": "unfriendly"}]
    return rows


# A linear probe on a random tiny backbone separates the classes less well than LoRA, which adapts the features.
@pytest.mark.parametrize(("peft", "lr", "least"), [("lora", 1e-2, 0.8), ("head", 5e-2, 0.7)])
def test_new_classification_head_on_a_pretrained_backbone_learns(tiny, tmp_path, peft, lr, least):
    write_jsonl(tmp_path / "train.jsonl", _rows(32, 1))
    write_jsonl(tmp_path / "eval.jsonl", _rows(16, 2))
    m = run_job(spec_from_dict({
        "kind": "classify", "output_dir": str(tmp_path / "c"), "model": str(tiny.policy), "peft": peft, "lr": lr,
        "train_file": str(tmp_path / "train.jsonl"), "eval_file": str(tmp_path / "eval.jsonl"),
        "max_steps": 20, "batch_size": 16, "max_length": 32,
    }))
    assert m["labels"] == ["friendly", "unfriendly"] and m["trainable_params"] < m["total_params"]
    assert m["eval_accuracy_before"] == 0.5  # the new head starts at chance
    assert m["eval_accuracy_after"] >= least and m["eval_f1_after"] >= least
    assert m["eval_f1_after"] > m["eval_f1_before"] + 0.2
    assert set(m["eval_per_label_after"]) == {"0", "1"}


def test_classifier_rejects_labels_missing_from_the_label_list(tiny, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", _rows(4, 1))
    spec = spec_from_dict({"kind": "classify", "output_dir": str(tmp_path / "c"), "model": str(tiny.policy),
                           "train_file": str(tmp_path / "train.jsonl"), "labels": ["friendly", "other"]})
    with pytest.raises(ValueError, match="labels:.*unfriendly"):
        run_job(spec)
