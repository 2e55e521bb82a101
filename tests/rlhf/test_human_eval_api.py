"""Human evaluation over the REST API (roles, 404 across campaigns, 400s) and the ``rlhf_human_eval`` command."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling.models import Prompt
from labeling.services.campaigns import campaign_create
from labeling.services.items import PromptSpec, prompts_create
from rlhf.models import HumanEvaluation
from rlhf.services.registry import base_model_get_or_create, policy_base_version
from rlhf.simulate import SimulatedAnnotator, rule_shorter, simulated_user
from tests.conftest import client_for
from tests.factories import UserFactory, member

GEN = {"max_new_tokens": 6, "temperature": 1.0, "batch_size": 16, "max_length": 96}


@pytest.fixture(scope="session")
def tiny_policy_b(tmp_path_factory):
    from rlhf.training.tiny import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("rlhf-tiny-b") / "policy", seed=1)


@pytest.fixture
def setup(storage, tiny_policy_dir, tiny_policy_b):
    from rlhf.training.tiny import synthetic_prompts

    admin = UserFactory()
    campaign = campaign_create(created_by=admin, name="Human eval API", overlap=1, strength_enabled=False)
    unique = list({json.dumps(r["prompt"]): r["prompt"] for r in synthetic_prompts(100, seed=2, chat=True)}.values())
    prompts_create(campaign=campaign, specs=[PromptSpec(messages=p, split="test") for p in unique[:6]])
    base_a = base_model_get_or_create(name="tiny-a", source=str(tiny_policy_dir))
    base_b = base_model_get_or_create(name="tiny-b", source=str(tiny_policy_b))
    v0 = policy_base_version(campaign=campaign, base=base_a)
    roles = {role: member(campaign, role=role) for role in ("researcher", "annotator")}
    return campaign, admin, roles, v0, base_b


def _url(campaign, suffix: str = "") -> str:
    return f"/api/v1/rlhf/campaigns/{campaign.pk}/human-evals/{suffix}"


@pytest.mark.django_db
def test_admins_create_researchers_read_others_are_refused(setup, monkeypatch, django_capture_on_commit_callbacks):
    campaign, admin, roles, v0, base_b = setup
    sent = []
    monkeypatch.setattr("rlhf.tasks.gpu_human_eval.delay", lambda he_id: sent.append(he_id))
    body = {"model_a": v0.pk, "base_model_b": base_b.pk, "n_prompts": 4, "seed": 1, "generation": GEN}
    for role in ("researcher", "annotator"):
        assert client_for(roles[role]).post(_url(campaign), body, format="json").status_code == 403
    outsider = UserFactory()
    assert client_for(outsider).post(_url(campaign), body, format="json").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        created = client_for(admin).post(_url(campaign), body, format="json")
    assert created.status_code == 201, created.json()
    he = HumanEvaluation.objects.get(pk=created.json()["id"])
    assert sent == [he.pk] and he.prompts_count == 4 and he.created_by == admin
    assert created.json()["model_a_label"] == v0.label and created.json()["status"] == "generating"

    listed = client_for(roles["researcher"]).get(_url(campaign))
    assert listed.status_code == 200 and [r["id"] for r in listed.json()["results"]] == [he.pk]
    detail = client_for(roles["researcher"]).get(_url(campaign, f"{he.pk}/"))
    assert detail.status_code == 200
    result = detail.json()["result"]
    assert result["n"] == 0 and result["win_rate"] is None and result["per_annotator"] == []
    assert client_for(roles["annotator"]).get(_url(campaign, f"{he.pk}/")).status_code == 403
    assert client_for(outsider).get(_url(campaign, f"{he.pk}/")).status_code == 404

    # Another campaign's evaluation and policy versions are not found from this one.
    other = campaign_create(created_by=admin, name="Other campaign")
    assert client_for(admin).get(_url(other, f"{he.pk}/")).status_code == 404
    foreign = policy_base_version(campaign=other, base=base_b)
    moved = client_for(admin).post(_url(campaign), {**body, "model_a": foreign.pk}, format="json")
    assert moved.status_code == 404 and f"policy {foreign.pk}" in moved.json()["detail"]


@pytest.mark.django_db
def test_bad_requests_are_400_naming_the_field(setup):
    campaign, admin, _, v0, base_b = setup
    client = client_for(admin)
    cases = [
        ({"model_a": v0.pk}, "model_b"),
        ({"model_a": v0.pk, "base_model_a": base_b.pk, "base_model_b": base_b.pk}, "model_a"),
        ({"model_a": v0.pk, "base_model_b": base_b.pk, "prompt_ids": [1], "n_prompts": 2}, "prompt_ids"),
        ({"model_a": v0.pk, "model_b": v0.pk}, "model_b"),
        ({"model_a": v0.pk, "base_model_b": base_b.pk, "generation": {"top_k": 3}}, "generation"),
        ({"model_a": v0.pk, "base_model_b": base_b.pk, "prompt_ids": [10**9]}, "prompts"),
    ]
    for body, field in cases:
        r = client.post(_url(campaign), body, format="json")
        assert r.status_code == 400 and r.json()["field"] == field, (body, r.json())
    assert not HumanEvaluation.objects.exists()
    r = client.get(_url(campaign, "1/?both_bad=maybe"))
    assert r.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_command_creates_inline_and_reports_the_result(setup):
    campaign, _, _, v0, base_b = setup
    out = StringIO()
    call_command("rlhf_human_eval", "create", str(campaign.pk), "--a", "v0", "--b", base_b.name, "--prompts", "5",
                 "--max-new-tokens", "6", "--inline", stdout=out)
    he = HumanEvaluation.objects.get(campaign=campaign)
    assert he.status == HumanEvaluation.Status.READY and he.prompts_count == 5 and he.model_a == v0
    assert f"{he.items_count} items ready" in out.getvalue()
    SimulatedAnnotator(user=simulated_user(campaign=campaign, username="sim"), campaign=campaign,
                       judge=rule_shorter, name="shorter").run()
    out = StringIO()
    call_command("rlhf_human_eval", "report", campaign.name, "--both-bad", "tie", stdout=out)
    report = json.loads(out.getvalue())
    assert report["human_eval"] == he.pk and report["n"] == he.items_count and report["both_bad_rule"] == "tie"
    assert report["per_annotator"][0]["annotator"] == "sim"
    detail = client_for(setup[1]).get(_url(campaign, f"{he.pk}/?both_bad=tie"))
    assert detail.json()["result"]["win_rate"] == report["win_rate"]
    assert client_for(setup[1]).get(_url(campaign, f"{he.pk}/?both_bad=maybe")).status_code == 400


@pytest.mark.django_db
def test_the_command_exits_2_on_bad_input(setup):
    campaign, _, _, _, base_b = setup
    bad = [
        ["create", str(campaign.pk), "--a", "v7", "--b", base_b.name],
        ["create", str(campaign.pk), "--a", "v0"],
        ["create", str(campaign.pk), "--a", "v0", "--b", "v0"],
        ["create", str(campaign.pk), "--a", "v0", "--b", base_b.name, "--prompt-ids", "1,x"],
        ["create", "no such campaign", "--a", "v0", "--b", base_b.name],
        ["report", str(campaign.pk)],
    ]
    for args in bad:
        with pytest.raises(CommandError) as err:
            call_command("rlhf_human_eval", *args, stdout=StringIO())
        assert err.value.returncode == 2, args
    Prompt.objects.filter(campaign=campaign).update(split="train")
    with pytest.raises(CommandError, match="no held-out prompts") as err:
        call_command("rlhf_human_eval", "create", str(campaign.pk), "--a", "v0", "--b", base_b.name)
    assert err.value.returncode == 2 and not HumanEvaluation.objects.exists()
