import json

import pytest

from rlhf.training import run_job
from rlhf.training.common import write_jsonl
from rlhf.training.forgetting import forgetting_report, format_report
from rlhf.training.specs import spec_from_dict
from rlhf.training.tiny import corpus, synthetic_pairs

pytestmark = pytest.mark.training


def test_forgetting_report_orients_each_metric_and_flags_past_the_threshold():
    before = {"general": {"perplexity": 100.0}, "task": {"rougeL": 0.40, "completion_perplexity": 50.0}}
    after = {"general": {"perplexity": 104.0}, "task": {"rougeL": 0.30, "completion_perplexity": 20.0}}
    r = forgetting_report(before, after, threshold=0.05)
    assert r["flagged"] == ["task/rougeL"] and not r["ok"]  # +4% perplexity is under 5%; -25% ROUGE-L is not
    assert forgetting_report(before, after, threshold=0.03)["flagged"] == ["general/perplexity", "task/rougeL"]
    assert "WORSE" in format_report(r)


def test_eval_suite_flags_forgetting_after_full_training_on_other_text(tiny, tmp_path):
    """A base that learned general text, then full CPT on one narrow text: the general set gets worse, and the
    suite run before and after must say so."""
    (tmp_path / "general.txt").write_text(corpus(80, seed=9))
    write_jsonl(tmp_path / "task.jsonl", [{"prompt": r["prompt"], "response": r["chosen"]}
                                          for r in synthetic_pairs(4, 3)])
    write_jsonl(tmp_path / "narrow.jsonl", [{"text": "zzz qqq xxx " * 30}] * 20)
    sets = [{"name": "general", "path": str(tmp_path / "general.txt"), "kind": "text"},
            {"name": "task", "path": str(tmp_path / "task.jsonl"), "kind": "generation"}]
    (tmp_path / "general_train.txt").write_text(corpus(300, seed=10))
    base = run_job(spec_from_dict({"kind": "cpt", "output_dir": str(tmp_path / "base"), "model": str(tiny.policy),
                                   "train_file": str(tmp_path / "general_train.txt"), "peft": "full", "lr": 1e-2,
                                   "max_steps": 20, "max_length": 64}))
    run_job(spec_from_dict({"kind": "eval", "output_dir": str(tmp_path / "e0"), "model": base["model_dir"],
                            "sets": sets, "max_length": 64, "max_new_tokens": 8}))
    cpt = run_job(spec_from_dict({"kind": "cpt", "output_dir": str(tmp_path / "cpt"), "model": base["model_dir"],
                                  "train_file": str(tmp_path / "narrow.jsonl"), "peft": "full", "lr": 1e-2,
                                  "max_steps": 10, "max_length": 32}))
    m = run_job(spec_from_dict({"kind": "eval", "output_dir": str(tmp_path / "e1"), "model": cpt["model_dir"],
                                "sets": sets, "max_length": 64, "max_new_tokens": 8,
                                "baseline": str(tmp_path / "e0" / "eval_report.json")}))

    assert m["forgetting_ok"] is False and "general/perplexity" in m["forgetting_flagged"]
    report = json.loads((tmp_path / "e1" / "forgetting.json").read_text())
    general = next(r for r in report["rows"] if r["set"] == "general")
    assert general["after"] > 1.5 * general["before"]
    assert {"rouge1", "rouge2", "rougeL", "bleu", "bertscore_f1", "completion_perplexity"} <= set(
        json.loads((tmp_path / "e1" / "eval_report.json").read_text())["sets"]["task"])
