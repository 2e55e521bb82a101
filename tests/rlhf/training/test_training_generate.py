import pytest

from rlhf.training import generate
from rlhf.training.common import read_jsonl
from rlhf.training.specs import GenerateSpec

pytestmark = pytest.mark.training


def _run(tiny, out, **kw):
    spec = GenerateSpec(output_dir=str(out), model=str(tiny.policy), prompts_file=str(tiny.chat_prompts),
                        max_new_tokens=6, batch_size=5, **kw)
    metrics = generate.run(spec)
    return metrics, read_jsonl(out / "generations.jsonl")


def test_generate_n_per_prompt_is_seeded_and_batched(tiny, tmp_path):
    m, rows = _run(tiny, tmp_path / "a", n_per_prompt=3, seed=7, temperature=1.0, max_prompts=4)
    assert m["responses"] == 12 and len(rows) == 12
    assert sorted((r["prompt_index"], r["sample_index"]) for r in rows) == [(i, k) for i in range(4) for k in range(3)]
    assert rows[0]["params"]["temperature"] == 1.0 and rows[0]["params"]["seed"] == 7
    assert len({r["response"] for r in rows if r["prompt_index"] == 0}) > 1  # sampling, not copies
    assert len(read_jsonl(tmp_path / "a" / "progress.jsonl")) == 3  # 12 responses in batches of 5

    _, again = _run(tiny, tmp_path / "b", n_per_prompt=3, seed=7, temperature=1.0, max_prompts=4)
    assert [r["response"] for r in again] == [r["response"] for r in rows]
    _, other = _run(tiny, tmp_path / "c", n_per_prompt=3, seed=8, temperature=1.0, max_prompts=4)
    assert [r["response"] for r in other] != [r["response"] for r in rows]


def test_greedy_is_independent_of_batching(tiny, tmp_path):
    """Left padding must not change a prompt's continuation: greedy alone and in a padded batch agree."""
    _, batched = _run(tiny, tmp_path / "a", temperature=0.0)
    spec = GenerateSpec(output_dir=str(tmp_path / "b"), model=str(tiny.policy), prompts_file=str(tiny.chat_prompts),
                        max_new_tokens=6, batch_size=1, temperature=0.0)
    generate.run(spec)
    single = read_jsonl(tmp_path / "b" / "generations.jsonl")
    assert [r["response"] for r in single] == [r["response"] for r in batched]
