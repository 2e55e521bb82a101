"""The rlhf REST API's permissions and shapes, the simulated annotator, and the loop's event subscription."""
from __future__ import annotations

import pytest

from labeling.models import Judgment, Round
from labeling.services.campaigns import round_close
from rlhf.models import LoopConfig, TrainingRun
from rlhf.services import runs
from rlhf.services.loop import loop_configure, loop_round_check
from rlhf.services.registry import base_model_get_or_create, policy_base_version
from rlhf.simulate import SimulatedAnnotator, judge_from_spec, rule_contains, rule_shorter
from tests.conftest import client_for
from tests.factories import CampaignFactory, ItemFactory, UserFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(storage, tiny_policy_dir):
    campaign = CampaignFactory()
    admin = member(campaign, role="admin")
    researcher = member(campaign, role="researcher")
    outsider = UserFactory()
    base = base_model_get_or_create(name="tiny", source=str(tiny_policy_dir))
    run = runs.run_create(kind="dpo", campaign=campaign, spec={"model": str(tiny_policy_dir), "train_file": "t.jsonl"})
    return campaign, admin, researcher, outsider, base, run


def test_researchers_read_runs_admins_cancel_outsiders_see_nothing(setup):
    campaign, admin, researcher, outsider, _, run = setup
    r = client_for(researcher)
    listed = r.get(f"/api/v1/rlhf/campaigns/{campaign.pk}/runs/")
    assert listed.status_code == 200 and listed.json()["results"][0]["id"] == run.pk
    assert r.get(f"/api/v1/rlhf/runs/{run.pk}/progress/").json()["status"] == "queued"
    assert r.post(f"/api/v1/rlhf/runs/{run.pk}/cancel/").status_code == 403
    assert client_for(outsider).get(f"/api/v1/rlhf/runs/{run.pk}/").status_code == 404
    assert client_for(outsider).get(f"/api/v1/rlhf/campaigns/{campaign.pk}/runs/").status_code == 404

    cancelled = client_for(admin).post(f"/api/v1/rlhf/runs/{run.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client_for(admin).post(f"/api/v1/rlhf/runs/{run.pk}/cancel/").status_code == 409


def test_admin_creates_a_run_that_is_enqueued_on_commit(setup, monkeypatch, django_capture_on_commit_callbacks):
    campaign, admin, researcher, _, _, _ = setup
    sent = []
    monkeypatch.setattr("rlhf.tasks.gpu_run.apply_async", lambda args, task_id: sent.append((args, task_id)))
    body = {"kind": "dpo", "spec": {"model": "m", "train_file": "t.jsonl", "max_steps": 2}}
    assert client_for(researcher).post(f"/api/v1/rlhf/campaigns/{campaign.pk}/runs/", body, format="json").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        created = client_for(admin).post(f"/api/v1/rlhf/campaigns/{campaign.pk}/runs/", body, format="json")
    assert created.status_code == 201, created.json()
    run = TrainingRun.objects.get(pk=created.json()["id"])
    assert sent == [([run.pk], run.celery_task_id)]
    bad = client_for(admin).post(f"/api/v1/rlhf/campaigns/{campaign.pk}/runs/",
                                 {"kind": "dpo", "spec": {"model": "m", "train_file": "t", "lr": 5}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "spec" and "lr" in bad.json()["detail"]


def test_loop_config_policies_lineage_and_rollback(setup):
    campaign, admin, researcher, _, base, _ = setup
    a = client_for(admin)
    assert client_for(researcher).put(f"/api/v1/rlhf/campaigns/{campaign.pk}/loop/", {"base_model": base.pk},
                                      format="json").status_code == 403
    put = a.put(f"/api/v1/rlhf/campaigns/{campaign.pk}/loop/",
                {"base_model": base.pk, "algorithm": "dpo", "judgments_per_round": 10, "judge": {"rule": "shorter"}},
                format="json")
    assert put.status_code == 200, put.json()
    assert client_for(researcher).get(f"/api/v1/rlhf/campaigns/{campaign.pk}/loop/").json()["judgments_per_round"] == 10
    bad = a.put(f"/api/v1/rlhf/campaigns/{campaign.pk}/loop/", {"algorithm": "ppo"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "reward_backbone"

    v0 = policy_base_version(campaign=campaign, base=base)
    from rlhf.models import PolicyVersion

    v1 = PolicyVersion.objects.create(campaign=campaign, base=base, number=1, label="c-v1", parent=v0,
                                      adapter_dir="/x", promoted=True)
    LoopConfig.objects.filter(campaign=campaign).update(current_policy=v1)
    lineage = client_for(researcher).get(f"/api/v1/rlhf/policies/{v1.pk}/lineage/").json()["lineage"]
    assert [p["id"] for p in lineage] == [v1.pk, v0.pk]
    rolled = a.post(f"/api/v1/rlhf/campaigns/{campaign.pk}/policies/{v0.pk}/rollback/")
    assert rolled.status_code == 200 and rolled.json()["current_policy"] == v0.pk
    listed = client_for(researcher).get(f"/api/v1/rlhf/campaigns/{campaign.pk}/policies/").json()["results"]
    assert [p["label"] for p in listed] == [v0.label, "c-v1"]


def test_judges():
    assert rule_shorter("p", ["abc", "a"]) == [-3.0, -1.0]
    assert rule_contains("Should")("p", ["you should, SHOULD", "no"]) == [2.0, 0.0]
    assert judge_from_spec({"rule": "contains", "word": "x"})("p", ["xx"]) == [2.0]
    with pytest.raises(ValueError):
        judge_from_spec({"rule": "contains"})
    with pytest.raises(ValueError):
        judge_from_spec({"rule": "longest"})


def test_simulated_annotator_judges_through_the_queue_like_a_person():
    campaign = CampaignFactory(overlap=1)
    items = [ItemFactory(campaign=campaign) for _ in range(6)]
    for item in items:  # make the rule decide: the first response is the shorter one
        first, second = [link.response for link in item.item_responses.all()]
        first.text, second.text = "short", "a much longer answer"
        first.save()
        second.save()
    sim = SimulatedAnnotator.from_spec(campaign=campaign, spec={"rule": "shorter"}, seed=0)
    assert sim.run() == 6
    judgments = Judgment.objects.filter(campaign=campaign)
    assert judgments.count() == 6
    assert all(j.source == Judgment.Source.SIMULATED and j.source_name == "shorter" for j in judgments)
    assert all(j.winner.text == "short" for j in judgments)
    assert all(j.assignment.annotator == sim.user for j in judgments)

    noisy_campaign = CampaignFactory(overlap=1)
    for _ in range(20):
        ItemFactory(campaign=noisy_campaign)
    noisy = SimulatedAnnotator.from_spec(campaign=noisy_campaign, spec={"rule": "shorter"}, noise=0.5, seed=1,
                                         username="noisy")
    noisy.run()
    assert 3 <= noisy.counts["noisy"] <= 17


def test_judgment_events_reach_the_loop_only_after_commit(setup, monkeypatch, django_capture_on_commit_callbacks):
    campaign, admin, _, _, base, _ = setup
    calls = []
    monkeypatch.setattr("rlhf.tasks.loop_round_check.delay", lambda round_id: calls.append(("check", round_id)))
    monkeypatch.setattr("rlhf.tasks.loop_iteration_start.delay", lambda round_id: calls.append(("start", round_id)))
    ItemFactory(campaign=campaign)
    sim = SimulatedAnnotator.from_spec(campaign=campaign, spec={"rule": "shorter"})
    with django_capture_on_commit_callbacks(execute=True):
        sim.run()
    assert calls == []  # loop mode is off: nothing is enqueued
    loop_configure(campaign=campaign, base_model=base, enabled=True, judgments_per_round=3)
    rnd = campaign.rounds.get(number=1)
    Round.objects.filter(pk=rnd.pk).update(target_judgments=3)
    for _ in range(2):
        ItemFactory(campaign=campaign)
    with django_capture_on_commit_callbacks(execute=True):
        sim.run()
    # Only judgments at or past the target enqueue a check (the captured callbacks all run after the last
    # commit here, so both new judgments see the full count).
    assert set(calls) == {("check", rnd.pk)}
    # The check closes the round at its target; closing starts the iteration (also when an admin closes it).
    Round.objects.filter(pk=rnd.pk).update(target_judgments=2)
    with django_capture_on_commit_callbacks(execute=True):
        assert loop_round_check(round_id=rnd.pk)
    assert ("start", rnd.pk) in calls
    calls.clear()
    other = Round.objects.create(campaign=campaign, number=2)
    with django_capture_on_commit_callbacks(execute=True):
        round_close(round=other)
    assert calls == [("start", other.pk)]


def test_commands_configure_the_loop_and_simulate_annotators(storage, tiny_policy_dir, capsys):
    from django.core.management import call_command

    campaign = CampaignFactory(overlap=1)
    for _ in range(3):
        ItemFactory(campaign=campaign)
    call_command("rlhf_loop", str(campaign.pk), "--base", str(tiny_policy_dir), "--judgments", "3",
                 "--judge-word", "should", "--train-steps", "5")
    config = LoopConfig.objects.get(campaign=campaign)
    assert config.judgments_per_round == 3 and config.train_params == {"max_steps": 5}
    assert config.judge == {"rule": "contains", "word": "should"}
    call_command("simulate_annotate", campaign.name, "--rule", "shorter", "--limit", "2")
    assert "2 judgments" in capsys.readouterr().out
    assert Judgment.objects.filter(campaign=campaign, source=Judgment.Source.SIMULATED).count() == 2
