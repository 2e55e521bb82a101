"""Loop pieces without a worker: training data from judgments (ties dropped, stable sha256), the gate, the
iteration's idempotent claim, and a failed step that an admin retries."""
from __future__ import annotations

import json

import pytest

from labeling.services.campaigns import round_close
from rlhf.evaluation import beats_parent
from rlhf.models import LoopIteration
from rlhf.services import loop
from rlhf.services.data import build_preference_data
from rlhf.services.registry import base_model_get_or_create
from rlhf.simulate import SimulatedAnnotator
from tests.factories import CampaignFactory, ItemFactory

pytestmark = pytest.mark.django_db


def _lengthen_second(item):
    """The shorter-answer rule then prefers the first response (no tie)."""
    first, second = [link.response for link in item.item_responses.all()]
    second.text = first.text + " longer"
    second.save()
    return item


def _judged_campaign(n=6):
    campaign = CampaignFactory(overlap=1)
    for i in range(n):
        item = ItemFactory(campaign=campaign)
        first, second = [link.response for link in item.item_responses.all()]
        second.text = first.text + " longer"
        if i % 3 == 0:
            second.text = "x" * len(first.text)  # same length: the shorter rule calls a tie
        second.save()
    SimulatedAnnotator.from_spec(campaign=campaign, spec={"rule": "shorter"}).run()
    return campaign


def test_training_data_drops_ties_and_hashes_stably(tmp_path):
    campaign = _judged_campaign()
    a = build_preference_data(campaign=campaign, round_ids=None, folder=tmp_path / "a")
    b = build_preference_data(campaign=campaign, round_ids=None, folder=tmp_path / "b")
    assert a.rows == 4 and a.sha256 == b.sha256
    rows = [json.loads(line) for line in a.path.read_text().splitlines()]
    assert all(len(r["chosen"][0]["content"]) < len(r["rejected"][0]["content"]) for r in rows)
    assert all(r["prompt"][0]["role"] == "user" and r["margin"] == 0.0 for r in rows)
    split = build_preference_data(campaign=campaign, round_ids=None, folder=tmp_path / "c", eval_fraction=0.5)
    assert split.rows + split.eval_rows == 4 and split.eval_rows >= 1


def test_the_gate_follows_the_judge_then_the_reward_model():
    win = {"win_rate": 0.7, "ci_low": 0.6, "ci_high": 0.8}
    lose = {"win_rate": 0.4, "ci_low": 0.3, "ci_high": 0.5}
    assert beats_parent({"judge": win, "reward_model": lose})[0]
    assert not beats_parent({"judge": lose, "reward_model": win})[0]
    assert not beats_parent({"reward_model": lose})[0]
    assert beats_parent({})[0]


def test_iteration_steps_are_idempotent_and_a_failed_one_can_be_retried(storage, tiny_policy_dir, monkeypatch,
                                                                           django_capture_on_commit_callbacks):
    enqueued = []
    monkeypatch.setattr("rlhf.tasks.loop_data.delay", lambda i: enqueued.append(("data", i)))
    monkeypatch.setattr("rlhf.tasks.gpu_loop_step.delay", lambda i, s: enqueued.append((s, i)))
    monkeypatch.setattr("rlhf.tasks.loop_iteration_start.delay", lambda r: enqueued.append(("start", r)))
    campaign = _judged_campaign()
    base = base_model_get_or_create(name="tiny", source=str(tiny_policy_dir))
    loop.loop_configure(campaign=campaign, base_model=base, enabled=True,
                        train_params={"max_steps": 1, "max_length": 64, "batch_size": 2})
    rnd = campaign.rounds.get(number=1)
    with django_capture_on_commit_callbacks(execute=True):
        round_close(round=rnd)
    assert enqueued == [("start", rnd.pk)]
    it = loop.iteration_start(round_id=rnd.pk)
    assert loop.iteration_start(round_id=rnd.pk) == it  # once per round
    with django_capture_on_commit_callbacks(execute=True):
        loop.step_data(iteration_id=it.pk)
    it.refresh_from_db()
    assert it.stage == LoopIteration.Stage.TRAIN and it.pairs == 4 and len(it.data_sha256) == 64
    assert loop.step_data(iteration_id=it.pk) is None  # a re-delivered data step does nothing

    # The training run fails (its data file vanished): the iteration fails, no policy; an admin retries.
    monkeypatch.setattr("rlhf.services.loop.DEFAULT_TRAIN", {"dpo": {"beta": 0.1}})
    saved = open(it.data_path).read()
    open(it.data_path, "w").write("not json\n")
    loop.step_train(iteration_id=it.pk)
    it.refresh_from_db()
    assert it.stage == LoopIteration.Stage.FAILED and it.policy is None and "train" in it.error
    open(it.data_path, "w").write(saved)
    with django_capture_on_commit_callbacks(execute=True):
        assert loop.loop_step_now(campaign=campaign)["queued"] == LoopIteration.Stage.TRAIN
    assert enqueued[-1] == (LoopIteration.Stage.TRAIN, it.pk)
    with django_capture_on_commit_callbacks(execute=True):
        loop.step_train(iteration_id=it.pk)
    it.refresh_from_db()
    assert it.stage == LoopIteration.Stage.EVALUATE and it.policy.parent.number == 0 and not it.policy.promoted


def test_an_evaluation_round_is_never_trained_on_nor_the_current_round(storage, tiny_policy_dir, monkeypatch,
                                                                      django_capture_on_commit_callbacks):
    """A human evaluation's round holds held-out comparisons: closing it starts no loop turn, the reward model's
    data of a later turn leaves it out, and an import that names no round does not land in it."""
    from labeling.models import Round
    from labeling.services.campaigns import round_create, round_current

    monkeypatch.setattr("rlhf.tasks.loop_data.delay", lambda i: None)
    monkeypatch.setattr("rlhf.tasks.gpu_loop_step.delay", lambda i, s: None)
    monkeypatch.setattr("rlhf.tasks.loop_iteration_start.delay", lambda r: None)
    campaign = _judged_campaign()
    collect = campaign.rounds.get(number=1)
    evaluation = round_create(campaign=campaign, purpose=Round.Purpose.EVALUATION)
    assert round_current(campaign=campaign) == collect  # the newest open round is the evaluation one
    base = base_model_get_or_create(name="tiny", source=str(tiny_policy_dir))
    backbone = base_model_get_or_create(name="tiny-rm", source=str(tiny_policy_dir), kind="reward")
    loop.loop_configure(campaign=campaign, base_model=base, reward_backbone=backbone, enabled=True,
                        algorithm="grpo", train_params={"max_steps": 1, "max_length": 64, "batch_size": 2})
    item = _lengthen_second(ItemFactory(campaign=campaign, round=evaluation))
    SimulatedAnnotator.from_spec(campaign=campaign, spec={"rule": "shorter"}).run()
    assert item.judgments.exists()
    round_close(round=evaluation)
    assert loop.iteration_start(round_id=evaluation.pk) is None
    # The next collection round (3) trains on rounds 1 and 3, never on the evaluation round 2 between them.
    round_close(round=collect)
    later = round_create(campaign=campaign)
    _lengthen_second(ItemFactory(campaign=campaign, round=later))
    SimulatedAnnotator.from_spec(campaign=campaign, spec={"rule": "shorter"}).run()
    round_close(round=later)
    it = loop.iteration_start(round_id=later.pk)
    with django_capture_on_commit_callbacks(execute=True):
        loop.step_data(iteration_id=it.pk)
    reward_text = "".join(p.read_text() for p in (loop.loop_root() / str(it.pk) / "reward").glob("*.jsonl"))
    assert any(i.prompt.text in reward_text for i in collect.items.all())  # its decisive judgments are there
    assert item.prompt.text not in reward_text
