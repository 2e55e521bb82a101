"""The TensorBoard mirror of a job's metrics (``tracking.Mirrors``): event files read back with TensorBoard's own
EventAccumulator hold exactly the per-step numbers of ``progress.jsonl`` and the final metrics."""
import json
import sys

import pytest

from rlhf.training import run_job
from rlhf.training.common import read_jsonl, write_jsonl
from rlhf.training.specs import spec_from_dict

pytestmark = pytest.mark.training


def _sft(tiny, tmp_path, name: str) -> dict:
    write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Say yes.", "response": " yes"}] * 8)
    return run_job(spec_from_dict({"kind": "sft", "output_dir": str(tmp_path / name), "model": str(tiny.policy),
                                   "datasets": [{"path": str(tmp_path / "d.jsonl")}], "peft": "full",
                                   "max_steps": 3, "max_length": 32}))


def test_tensorboard_scalars_match_progress_and_final_metrics(tiny, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("LOOPWISE_TENSORBOARD_DIR", str(tmp_path / "tb"))
    metrics = _sft(tiny, tmp_path, "run")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["mirrors"]["tensorboard"] == "on"
    folders = [p for p in (tmp_path / "tb").iterdir() if p.is_dir()]
    assert [p.name for p in folders] == [f"sft-{run['run_id'][:8]}"]
    assert list(folders[0].glob("events.out.tfevents.*"))

    events = EventAccumulator(str(folders[0]), size_guidance={"scalars": 0})
    events.Reload()
    logged = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}

    rows = read_jsonl(tmp_path / "run" / "progress.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    expected: dict[str, list] = {}
    for row in rows:
        for key, value in row.items():
            if key not in ("step", "total") and isinstance(value, int | float) and not isinstance(value, bool):
                expected.setdefault(key, []).append((row["step"], value))
    assert "loss" in expected and len(expected["loss"]) == 3
    curves = {tag: points for tag, points in logged.items() if not tag.startswith("final/")}
    assert set(curves) == set(expected)
    for tag, points in expected.items():
        assert [s for s, _ in curves[tag]] == [s for s, _ in points], tag
        assert [v for _, v in curves[tag]] == pytest.approx([v for _, v in points], rel=1e-6, abs=1e-7), tag

    finals = {tag[len("final/"):]: points for tag, points in logged.items() if tag.startswith("final/")}
    numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    assert set(finals) == set(numeric) and "steps" in finals
    for key, value in numeric.items():
        assert finals[key] == [(3, pytest.approx(value, rel=1e-6, abs=1e-7))], key


def test_without_the_package_the_run_says_tensorboard_was_skipped(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPWISE_TENSORBOARD_DIR", str(tmp_path / "tb"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    _sft(tiny, tmp_path, "run")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "done" and run["mirrors"]["tensorboard"].startswith("skipped")
    assert not (tmp_path / "tb").exists()
