import json

import pytest

from rlhf.training import run_job
from rlhf.training.adapters import sha256_file
from rlhf.training.common import read_jsonl, write_jsonl
from rlhf.training.specs import spec_from_dict

pytestmark = pytest.mark.training


def test_every_run_records_spec_code_data_lineage_metrics_and_artifacts(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "mlruns"))  # mlflow is not installed: skipped cleanly
    write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Say yes.", "response": " yes"}] * 8)
    first = run_job(spec_from_dict({"kind": "sft", "output_dir": str(tmp_path / "a"), "model": str(tiny.policy),
                                    "datasets": [{"path": str(tmp_path / "d.jsonl")}], "peft": "full",
                                    "max_steps": 2, "max_length": 32}))
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["status"] == "done" and run["kind"] == "sft" and len(run["run_id"]) == 32
    assert run["spec"]["max_steps"] == 2 and run["code_version"].startswith(("git:", "loopwise"))
    assert run["data"] == {str(tmp_path / "d.jsonl"): {"sha256": sha256_file(tmp_path / "d.jsonl"),
                                                       "bytes": (tmp_path / "d.jsonl").stat().st_size}}
    assert run["metrics"]["steps"] == 2 == len(read_jsonl(tmp_path / "a" / "progress.jsonl"))
    assert run["artifacts"]["model/model.safetensors"]["sha256"] == sha256_file(tmp_path / "a/model/model.safetensors")
    assert run["mirrors"]["mlflow"].startswith("skipped") and first["steps"] == 2

    # A job starting from that run's model names it as its parent.
    run_job(spec_from_dict({"kind": "generate", "output_dir": str(tmp_path / "b"), "model": first["model_dir"],
                            "prompts_file": str(tiny.prompts), "max_new_tokens": 2, "max_prompts": 2}))
    child = json.loads((tmp_path / "b" / "run.json").read_text())
    assert child["parents"] == [{"field": "model", "path": first["model_dir"], "run_id": run["run_id"],
                                 "kind": "sft"}]


def test_a_failed_run_is_recorded_with_its_error(tiny, tmp_path):
    spec = spec_from_dict({"kind": "sft", "output_dir": str(tmp_path / "f"), "model": str(tiny.policy),
                           "datasets": [{"path": str(tmp_path / "missing.jsonl")}]})
    with pytest.raises(FileNotFoundError):
        run_job(spec)
    run = json.loads((tmp_path / "f" / "run.json").read_text())
    assert run["status"] == "failed" and "FileNotFoundError" in run["error"]
