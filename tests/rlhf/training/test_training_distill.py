import pytest

from rlhf.training import run_job
from rlhf.training.common import write_jsonl
from rlhf.training.specs import spec_from_dict
from rlhf.training.tiny import synthetic_pairs

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def teacher(tiny, tmp_path_factory):
    """The tiny policy fully fine-tuned to answer with friendly words (SFT, about 3 s): a teacher with a skill."""
    root = tmp_path_factory.mktemp("teacher")
    write_jsonl(root / "sft.jsonl", [{"prompt": r["prompt"], "response": r["chosen"]} for r in synthetic_pairs(64, 1)])
    m = run_job(spec_from_dict({"kind": "sft", "output_dir": str(root / "sft"), "model": str(tiny.policy),
                                "peft": "full", "lr": 3e-3, "datasets": [{"path": str(root / "sft.jsonl")}],
                                "max_steps": 20, "batch_size": 8, "max_length": 64}))
    return m["model_dir"]


def test_a_smaller_student_distilled_from_the_teacher_imitates_it(tiny, teacher, tmp_path):
    spec = spec_from_dict({
        "kind": "distill", "output_dir": str(tmp_path / "d"), "model": teacher, "prompts_file": str(tiny.prompts),
        "student_layers": 1, "student_hidden": 32, "max_new_tokens": 8, "max_steps": 12, "batch_size": 8,
        "lr": 1e-2, "max_length": 64, "reward_function": "rlhf.training.rewards:friendly_words",
    })
    m = run_job(spec)

    assert m["student_params"] < 0.5 * m["teacher_params"]
    assert m["kl_teacher_student_after"] < 0.7 * m["kl_teacher_student_before"]
    assert m["teacher_reward_before"] > 0.3  # the teacher learned its skill
    assert m["student_reward_after"] > m["student_reward_before"]
    assert m["win_rate_vs_teacher_after"] > m["win_rate_vs_teacher_before"]
    assert m["win_rate_ci_low_after"] <= m["win_rate_vs_teacher_after"] <= m["win_rate_ci_high_after"]
    assert m["model_dir"].endswith("model")
