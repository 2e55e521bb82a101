import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.training

REPO = Path(__file__).resolve().parents[3]


def _cli(spec_path, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rlhf.training", str(spec_path), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("content", "message"), [
    ('{"kind": "dpo", "output_dir": "o", "model": "m", "train_file": "t", "beta": "high"}', "beta: expected"),
    ('{"kind": "dpo", "output_dir": "o", "model": "m", "train_file": "t", "betaa": 1}', "betaa: unknown field"),
    ("[1, 2", "invalid JSON"),
    (None, "No such file"),
])
def test_bad_spec_exits_2_with_the_reason(tmp_path, content, message):
    path = tmp_path / "spec.json"
    if content is not None:
        path.write_text(content)
    proc = _cli(path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stdout == ""


def test_cli_runs_a_job_and_prints_metrics(tiny, tmp_path):
    spec = {"kind": "generate", "output_dir": str(tmp_path / "out"), "model": str(tiny.policy),
            "prompts_file": str(tiny.prompts), "max_new_tokens": 4, "n_per_prompt": 2}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = _cli(tmp_path / "spec.json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["responses"] == 16
    assert "generate" in proc.stderr and "100%" in proc.stderr  # the tqdm bar
    assert (tmp_path / "out" / "metrics.json").is_file()


def test_cli_reports_a_failing_job_with_exit_1(tmp_path, capsys):
    from rlhf.training.__main__ import main  # in-process: a third interpreter start would cost ~9 s

    spec = {"kind": "generate", "output_dir": str(tmp_path / "out"), "model": str(tmp_path / "no-such-model"),
            "prompts_file": str(tmp_path / "p.jsonl")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main([str(tmp_path / "spec.json"), "--no-progress"]) == 1
    assert "generate job failed" in capsys.readouterr().err
