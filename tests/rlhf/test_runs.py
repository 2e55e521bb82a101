"""Training runs in-process (no worker): validation, success registers outputs with artifacts, failure and
cancellation register nothing, a re-delivered task does nothing, generation fills a round with provenance."""
from __future__ import annotations

import json

import pytest

from labeling.errors import Conflict, ValidationError
from labeling.models import ComparisonItem, Response
from labeling.services.items import PromptSpec, prompts_create
from rlhf.models import BaseModel, PolicyVersion, ResponseProvenance, RewardModelVersion, TrainingRun
from rlhf.services import runs
from rlhf.services.execution import execute_run
from rlhf.services.generation import clean_text, generation_run_create, pair_indexes
from rlhf.services.registry import base_model_get_or_create, policy_base_version, policy_lineage
from tests.factories import CampaignFactory

pytestmark = [pytest.mark.django_db, pytest.mark.training]


def _pairs_file(path, n=16):
    from rlhf.training.tiny import synthetic_pairs

    path.write_text("".join(json.dumps(r) + "\n" for r in synthetic_pairs(n, seed=1, chat=True)))
    return path


def test_run_create_validates_the_spec_and_names_the_field(storage, tiny_policy_dir):
    with pytest.raises(ValidationError) as err:
        runs.run_create(kind="dpo", spec={"model": str(tiny_policy_dir), "train_file": "x.jsonl", "beta": -1})
    assert "beta" in err.value.message
    with pytest.raises(ValidationError):
        runs.run_create(kind="nope", spec={})
    run = runs.run_create(kind="dpo", spec={"model": str(tiny_policy_dir), "train_file": "x.jsonl"})
    assert run.status == TrainingRun.Status.QUEUED and run.spec["output_dir"] == str(storage / "runs" / str(run.pk))


def test_dpo_run_succeeds_registers_a_policy_with_hashed_artifacts(storage, tiny_policy_dir, tmp_path):
    campaign = CampaignFactory()
    base = base_model_get_or_create(name="tiny", source=str(tiny_policy_dir))
    v0 = policy_base_version(campaign=campaign, base=base)
    data = _pairs_file(tmp_path / "pairs.jsonl")
    run = runs.run_create(kind="dpo", campaign=campaign, policy=v0, data_sha256=runs.file_sha256(data),
                          spec={"model": str(tiny_policy_dir), "train_file": str(data), "max_steps": 3,
                                "max_length": 64, "batch_size": 4, "lr": 1e-2})
    done = execute_run(run.pk, task_id="t-1")
    assert done.status == TrainingRun.Status.SUCCEEDED, done.error
    assert done.progress_step == done.progress_total == 3 and done.loss is not None
    assert done.metrics["steps"] == 3 and done.attempts == 1 and done.celery_task_id == "t-1"
    paths = {a["path"]: a for a in done.artifacts}
    weights = paths["adapter/adapter_model.safetensors"]
    assert weights["sha256"] == runs.file_sha256(storage / "runs" / str(run.pk) / weights["path"])
    policy = done.policy_version
    assert policy.parent == v0 and policy.number == 1 and not policy.promoted
    assert policy.adapter_dir.endswith("adapter") and policy_lineage(policy=policy) == [policy, v0]

    # A re-delivered task for a finished run changes nothing.
    again = execute_run(run.pk, task_id="t-2")
    assert again.attempts == 1 and again.celery_task_id == "t-1"
    assert PolicyVersion.objects.filter(campaign=campaign).count() == 2


def test_a_failed_run_registers_nothing(storage, tiny_policy_dir):
    campaign = CampaignFactory()
    run = runs.run_create(kind="dpo", campaign=campaign,
                          spec={"model": str(tiny_policy_dir), "train_file": str(storage / "missing.jsonl")})
    done = execute_run(run.pk)
    assert done.status == TrainingRun.Status.FAILED and "missing.jsonl" in done.error
    assert not PolicyVersion.objects.filter(campaign=campaign).exists()
    with pytest.raises(Conflict):
        runs.run_cancel(run=done)


def test_cancel_a_queued_run_and_a_running_one(storage, tiny_policy_dir, tmp_path, monkeypatch):
    campaign = CampaignFactory()
    data = _pairs_file(tmp_path / "pairs.jsonl", 32)
    spec = {"model": str(tiny_policy_dir), "train_file": str(data), "max_steps": 50, "max_length": 64,
            "batch_size": 2}
    queued = runs.run_create(kind="reward", campaign=campaign, spec=spec)
    runs.run_cancel(run=queued)
    assert execute_run(queued.pk).status == TrainingRun.Status.CANCELLED

    # A cancel that arrives while the job runs: the progress callback sees it and the job stops there.
    running = runs.run_create(kind="dpo", campaign=campaign, spec=spec)
    monkeypatch.setattr("rlhf.services.execution.PROGRESS_INTERVAL_S", 0.0)
    real = runs.run_record_progress

    def record(*, run_id, record):
        if record["step"] == 2:
            TrainingRun.objects.filter(pk=run_id).update(cancel_requested=True)
        return real(run_id=run_id, record=record)

    monkeypatch.setattr("rlhf.services.execution.run_record_progress", record)
    done = execute_run(running.pk)
    assert done.status == TrainingRun.Status.CANCELLED and done.progress_step == 2
    assert not PolicyVersion.objects.filter(campaign=campaign).exists()
    assert not RewardModelVersion.objects.filter(campaign=campaign).exists()


def test_reward_run_registers_a_reward_model(storage, tiny_reward_dir, tmp_path):
    from labeling.services.queue import assignment_next, judgment_record
    from labeling.services.validation import JudgmentInput
    from tests.factories import ItemFactory, member

    campaign = CampaignFactory(overlap=2)
    for _ in range(4):
        ItemFactory(campaign=campaign)
    for user in (member(campaign), member(campaign)):  # two people who agree on every item
        while (slot := assignment_next(user=user, campaign=campaign)) is not None:
            judgment_record(user=user, assignment_id=slot.pk, data=JudgmentInput(winner=min(slot.shown_order)))
    data = _pairs_file(tmp_path / "pairs.jsonl")
    run = runs.run_create(kind="reward", campaign=campaign, spec={
        "model": str(tiny_reward_dir), "train_file": str(data), "eval_file": str(data), "max_steps": 3,
        "max_length": 64, "batch_size": 4})
    done = execute_run(run.pk)
    assert done.status == TrainingRun.Status.SUCCEEDED, done.error
    rm = done.reward_version
    assert rm.number == 1 and (storage / "runs" / str(run.pk) / "model" / "config.json").is_file()
    assert "eval_accuracy_after" in rm.metrics
    # Its accuracy is always reported beside the human agreement ceiling of the same campaign's data.
    assert rm.metrics["human_agreement"]["percent_agreement"]["value"] == 1.0


def test_generation_run_fills_a_round_with_pairs_and_provenance(storage, tiny_policy_dir):
    campaign = CampaignFactory(overlap=2)
    prompts_create(campaign=campaign, specs=[PromptSpec(messages=[{"role": "user", "content": f"Tell me {i}."}])
                                             for i in range(5)])
    base = base_model_get_or_create(name="tiny", source=str(tiny_policy_dir))
    v0 = policy_base_version(campaign=campaign, base=base)
    rnd = campaign.rounds.get(number=1)
    run = generation_run_create(campaign=campaign, round=rnd, policy=v0, prompts=list(campaign.prompts.all()),
                                n_per_prompt=4, generation={"max_new_tokens": 8, "seed": 3, "max_length": 64})
    done = execute_run(run.pk)
    assert done.status == TrainingRun.Status.SUCCEEDED, done.error
    items = ComparisonItem.objects.filter(round=rnd)
    assert items.count() == 10 and done.metrics["items"]["items_created"] == 10
    assert all(item.assignments.count() == 2 for item in items)
    responses = Response.objects.filter(round=rnd)
    assert {r.model_name for r in responses} == {v0.label}
    assert all(r.generation_params["seed"] == 3 and r.generation_params["policy"] == v0.label for r in responses)
    assert ResponseProvenance.objects.filter(policy=v0, run=done).count() == responses.count() == 20


def test_pairing_rules():
    import random

    texts = ["a", "b", "c", "d"]
    pairs = pair_indexes(texts, None, "random", random.Random(0))
    assert len(pairs) == 2 and sorted(i for p in pairs for i in p) == [0, 1, 2, 3]
    # Uncertain: the closest scores face each other.
    assert sorted(pair_indexes(texts, [0.0, 5.0, 0.1, 5.2], "uncertain", random.Random(0))) == [(0, 2), (1, 3)]
    # Identical texts never make a pair.
    assert pair_indexes(["x", "x", "y"], None, "random", random.Random(0)) in ([(0, 2)], [(1, 2)], [(2, 0)], [(2, 1)])
    assert clean_text("a\x00b\x07c\nd") == "abc\nd"


def test_uncertain_pairing_scores_samples_with_the_reward_model(storage, tiny_policy_dir, tiny_reward_dir):
    campaign = CampaignFactory()
    prompts_create(campaign=campaign, specs=[PromptSpec(messages=[{"role": "user", "content": f"Say {i}."}])
                                             for i in range(3)])
    base = base_model_get_or_create(name="tiny", source=str(tiny_policy_dir))
    backbone = base_model_get_or_create(name="tiny-rm", source=str(tiny_reward_dir), kind="reward")
    v0 = policy_base_version(campaign=campaign, base=base)
    rm = RewardModelVersion.objects.create(campaign=campaign, backbone=backbone, label="rm", model_dir=str(tiny_reward_dir))
    rnd = campaign.rounds.get(number=1)
    run = generation_run_create(campaign=campaign, round=rnd, policy=v0, prompts=list(campaign.prompts.all()),
                                n_per_prompt=4, pairing="uncertain", reward_model=rm,
                                generation={"max_new_tokens": 6, "max_length": 64})
    done = execute_run(run.pk)
    assert done.status == TrainingRun.Status.SUCCEEDED, done.error
    scores = json.loads((storage / "runs" / str(run.pk) / "scores.json").read_text())
    assert len(scores) == 12
    items = ComparisonItem.objects.filter(round=rnd)
    # Up to 2 pairs per prompt (identical samples of a short greedy-ish run never face each other).
    assert 3 <= items.count() <= 6 and all(i.metadata["pairing"] == "uncertain" for i in items)
    rewards = list(ResponseProvenance.objects.filter(run=done).values_list("reward", flat=True))
    assert len(rewards) == 2 * items.count() and None not in rewards
    with pytest.raises(ValidationError):
        generation_run_create(campaign=campaign, round=rnd, policy=v0, prompts=[], pairing="uncertain")


def test_pretraining_run_registers_its_model_as_a_base_model(storage, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"ROMEO: speak line {i} of the play, fair and soft." for i in range(300)), encoding="utf-8")
    spec = {"train_file": str(corpus), "vocab_size": 300, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
            "max_length": 32, "batch_size": 4, "max_steps": 3, "max_eval_blocks": 2}
    run = runs.run_create(kind="pretrain", spec=spec)
    done = execute_run(run.pk)
    assert done.status == TrainingRun.Status.SUCCEEDED, done.error
    base = BaseModel.objects.get(pk=done.metrics["base_model"])
    assert base.kind == BaseModel.Kind.POLICY and base.source == done.metrics["model_dir"]
    from rlhf.training.models import load_policy

    assert load_policy(base.source).config.num_hidden_layers == 1
