"""End to end on PostgreSQL with a real Celery worker (Redis db 13): the base tiny policy (version 0) against a
DPO version trained (by the worker) to say "should", compared on the campaign's held-out prompts. A simulated
annotator who prefers answers containing the word judges the round through the queue; the win-rate of the DPO
version and its whole 95% interval must lie above 1/2, and below 1/2 with the sides swapped."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from labeling.models import Judgment
from labeling.services.campaigns import campaign_create
from labeling.services.items import PromptSpec, prompts_create
from rlhf.models import HumanEvaluation, PolicyVersion, ResponseProvenance, TrainingRun
from rlhf.services.human_eval import human_eval_create, human_eval_result
from rlhf.services.registry import base_model_get_or_create, policy_base_version
from rlhf.services.runs import run_create, run_enqueue
from rlhf.simulate import SimulatedAnnotator
from tests.celery_worker import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.training]

REDIS_URL = os.environ.get("LOOPWISE_HUMAN_EVAL_REDIS_URL", "redis://127.0.0.1:6379/13")
WORD = "should"
GEN = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 24, "max_length": 128, "batch_size": 32}


@pytest.fixture
def worker(storage, tmp_path):
    log_path = tmp_path / "worker.log"
    with celery_worker(queues="cpu,gpu", storage=storage, log_path=log_path, redis_url=REDIS_URL) as proc:
        yield proc, log_path


def _wait(what: str, check, proc, log: Path, timeout: float = 240.0):
    return wait_for(what, check, proc, log, timeout=timeout, context=lambda: "run errors: " + str(
        list(TrainingRun.objects.exclude(error="").values_list("pk", "error"))))


def _dpo_pairs(path: Path, prompts: list) -> None:
    """Off-policy pairs that teach the word: chosen answers use it, rejected ones never do."""
    from rlhf.training.tiny import synthetic_pairs

    rows = synthetic_pairs(len(prompts), seed=11, chat=True)
    with open(path, "w", encoding="utf-8") as fh:
        for prompt, row in zip(prompts, rows, strict=True):
            chosen = f" You {WORD} ask, we {WORD} help." + row["chosen"]
            fh.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": row["rejected"]}) + "\n")


def test_people_prefer_the_version_trained_toward_them_with_a_confident_interval(
        worker, tiny_policy_dir, django_user_model, tmp_path):
    from rlhf.training.tiny import synthetic_prompts

    proc, log = worker
    admin = django_user_model.objects.create_user("eval-admin", password="x")
    campaign = campaign_create(created_by=admin, name="Human eval e2e", overlap=1, strength_enabled=False)
    unique = list({json.dumps(r["prompt"]): r["prompt"] for r in synthetic_prompts(400, seed=3, chat=True)}.values())
    held_out, train = unique[:40], unique[40:104]
    prompts_create(campaign=campaign, specs=[PromptSpec(messages=p, split="test") for p in held_out])
    base = base_model_get_or_create(name="tiny-llama", source=str(tiny_policy_dir))
    v0 = policy_base_version(campaign=campaign, base=base)

    # Version 1: DPO from version 0 on training prompts only, run by the worker and registered on success.
    _dpo_pairs(tmp_path / "pairs.jsonl", train)
    dpo = run_create(kind="dpo", campaign=campaign, policy=v0, created_by=admin,
                     spec={"model": base.source, "train_file": str(tmp_path / "pairs.jsonl"), "max_steps": 40,
                           "lr": 1e-2, "batch_size": 8, "max_length": 128, "beta": 0.1})
    run_enqueue(run=dpo)
    v1 = _wait("the DPO version", lambda: PolicyVersion.objects.filter(run=dpo).first(), proc, log)
    assert v1.number == 1 and v1.parent == v0

    t0 = time.monotonic()
    he = human_eval_create(campaign=campaign, model_a=v0, model_b=v1, generation=GEN, seed=5, created_by=admin)
    he = _wait("the evaluation round", lambda: HumanEvaluation.objects.exclude(
        status=HumanEvaluation.Status.GENERATING).filter(pk=he.pk).first(), proc, log)
    assert he.status == HumanEvaluation.Status.READY, he.error
    assert he.prompts_count == 40 and he.items_count + he.identical == 40 and he.items_count >= 30
    assert {r.status for r in (he.run_a, he.run_b)} == {TrainingRun.Status.SUCCEEDED}
    assert ResponseProvenance.objects.filter(response__round=he.round, policy=v1, run=he.run_b).count() == he.items_count
    generated = time.monotonic() - t0

    annotator = SimulatedAnnotator.from_spec(campaign=campaign, spec={"rule": "contains", "word": WORD}, seed=1)
    assert annotator.run() == he.items_count
    assert Judgment.objects.filter(round=he.round, source=Judgment.Source.SIMULATED).count() == he.items_count
    result = human_eval_result(human_eval=he)
    print(f"B={v1.label} over A={v0.label}: win-rate {result['win_rate']:.3f} (95% CI {result['ci_low']:.3f}-"
          f"{result['ci_high']:.3f}), n={result['n']}, B wins {result['wins_b']}, A wins {result['wins_a']}, "
          f"ties {result['ties']}, identical {he.identical}; generation {generated:.1f} s")
    assert result["win_rate"] > 0.5 and result["ci_low"] > 0.5, result
    assert result["per_annotator"][0]["annotator"] == "sim-annotator"

    # The sides swapped (another seed: the same one would give the same texts, which the campaign already has as
    # items and would not make again) come out on the other side of 1/2.
    swapped = human_eval_create(campaign=campaign, model_a=v1, model_b=v0, generation=GEN, seed=6)
    swapped = _wait("the swapped round", lambda: HumanEvaluation.objects.filter(
        pk=swapped.pk, status=HumanEvaluation.Status.READY).first(), proc, log)
    annotator.run()
    mirror = human_eval_result(human_eval=swapped)
    print(f"swapped (seed 6): win-rate {mirror['win_rate']:.3f} (95% CI {mirror['ci_low']:.3f}-{mirror['ci_high']:.3f}), "
          f"n={mirror['n']}")
    assert mirror["win_rate"] < 0.5 and mirror["ci_high"] < 0.5, mirror
