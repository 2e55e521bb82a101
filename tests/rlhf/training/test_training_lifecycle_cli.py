import json

import pytest

from rlhf.training.__main__ import main
from rlhf.training.tiny import corpus

pytestmark = pytest.mark.training


def test_cli_runs_a_pretraining_spec_and_prints_its_metrics(tmp_path, capsys):
    (tmp_path / "corpus.txt").write_text(corpus(400, seed=3))
    spec = {"kind": "pretrain", "output_dir": str(tmp_path / "out"), "train_file": str(tmp_path / "corpus.txt"),
            "vocab_size": 320, "hidden_size": 32, "num_layers": 1, "num_heads": 2, "max_length": 32,
            "batch_size": 4, "max_steps": 3}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main([str(tmp_path / "spec.json"), "--no-progress"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["kind"] == "pretrain" and metrics["steps"] == 3
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "done"


@pytest.mark.parametrize(("spec", "message"), [
    ({"kind": "sft", "output_dir": "o", "model": "m", "datasets": [{"path": "d", "weight": 0}]},
     "datasets[0].weight: must be > 0"),
    ({"kind": "cpt", "output_dir": "o", "model": "m", "train_file": "t", "peft": "adalora"}, "peft: must be one of"),
    ({"kind": "distill", "output_dir": "o", "model": "m", "prompts_file": "p", "reward_model": "r"},
     "reward_model: set exactly one"),
    ({"kind": "eval", "output_dir": "o", "model": "m", "sets": [{"name": "a", "path": "p", "kind": "vibes"}]},
     "sets[0].kind"),
    ({"kind": "merge", "output_dir": "o", "model": "m"}, "adapters: needs at least one"),
])
def test_cli_rejects_bad_lifecycle_specs_with_exit_2(tmp_path, capsys, spec, message):
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main([str(tmp_path / "spec.json")]) == 2
    assert message in capsys.readouterr().err
