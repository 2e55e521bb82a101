"""Human evaluation: the win-rate / CI arithmetic on hand-computed numbers, and the service on the tiny models
(real generate jobs run in this process; simulated annotators judge through the real queue)."""
from __future__ import annotations

import json
import math

import pytest

from labeling.errors import ValidationError
from labeling.models import ComparisonItem, Judgment, Prompt, Response, Round
from labeling.services.campaigns import campaign_create
from labeling.services.items import PromptSpec, prompts_create
from rlhf.models import BaseModel, HumanEvaluation, PolicyVersion, ResponseProvenance, TrainingRun
from rlhf.services.human_eval import (
    human_eval_create,
    human_eval_generate,
    human_eval_result,
    win_rate_summary,
)
from rlhf.services.registry import base_model_get_or_create, policy_base_version
from rlhf.simulate import SimulatedAnnotator, rule_shorter, simulated_user

GEN = {"max_new_tokens": 8, "temperature": 1.0, "batch_size": 16, "max_length": 96}


# --- arithmetic (no database) -------------------------------------------------------------------------------

def test_win_rate_counts_ties_as_half_and_leaves_both_bad_out_unless_asked():
    labels = ["b"] * 6 + ["a"] * 2 + ["tie"] * 2 + ["both_bad"] * 3
    out = win_rate_summary(labels, n_boot=0)
    # (6 wins + 2 ties x 1/2) / (6 + 2 + 2) items = 7 / 10
    assert out["win_rate"] == pytest.approx(0.7)
    assert (out["n"], out["wins_b"], out["wins_a"], out["ties"], out["both_bad"]) == (10, 6, 2, 2, 3)
    as_ties = win_rate_summary(labels, both_bad="tie", n_boot=0)
    # both-bad as ties: (6 + 5 x 1/2) / 13
    assert as_ties["win_rate"] == pytest.approx(8.5 / 13) and as_ties["n"] == 13
    with pytest.raises(ValidationError):
        win_rate_summary(labels, both_bad="drop")
    assert win_rate_summary(["both_bad"], n_boot=100)["win_rate"] is None


def test_bootstrap_interval_agrees_with_the_normal_approximation_and_is_seeded():
    labels = ["b"] * 60 + ["a"] * 40
    out = win_rate_summary(labels, n_boot=2000, seed=7)
    # Hand computation: p = 0.6, se = sqrt(0.6 * 0.4 / 100) = 0.04899; 95%: 0.6 -+ 1.96 se = 0.504 .. 0.696.
    se = math.sqrt(0.6 * 0.4 / 100)
    assert out["win_rate"] == pytest.approx(0.6)
    assert out["ci_low"] == pytest.approx(0.6 - 1.96 * se, abs=0.02)
    assert out["ci_high"] == pytest.approx(0.6 + 1.96 * se, abs=0.02)
    assert win_rate_summary(labels, n_boot=2000, seed=7) == out
    unanimous = win_rate_summary(["b"] * 20, n_boot=200)
    assert (unanimous["win_rate"], unanimous["ci_low"], unanimous["ci_high"]) == (1.0, 1.0, 1.0)


# --- the service on the tiny models -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_policy_b(tmp_path_factory):
    from rlhf.training.tiny import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("rlhf-tiny-b") / "policy", seed=1)


def make_campaign(django_user_model, *, overlap: int = 1, n_test: int = 12, name: str = "Eval"):
    from rlhf.training.tiny import synthetic_prompts

    admin = django_user_model.objects.create_user(f"{name}-admin", password="x")
    campaign = campaign_create(created_by=admin, name=name, overlap=overlap, strength_enabled=False)
    unique = list({json.dumps(r["prompt"]): r["prompt"] for r in synthetic_prompts(200, seed=4, chat=True)}.values())
    prompts_create(campaign=campaign, specs=[PromptSpec(messages=p, split="test") for p in unique[:n_test]]
                   + [PromptSpec(messages=p, split="train") for p in unique[n_test:n_test + 4]])
    return campaign, admin


@pytest.fixture
def two_bases(storage, tiny_policy_dir, tiny_policy_b):
    return (base_model_get_or_create(name="tiny-a", source=str(tiny_policy_dir)),
            base_model_get_or_create(name="tiny-b", source=str(tiny_policy_b)))


@pytest.mark.django_db
def test_create_opens_a_round_and_queues_one_generate_run_per_side_with_the_same_sampling(
        two_bases, django_user_model):
    campaign, admin = make_campaign(django_user_model)
    base_a, base_b = two_bases
    v0 = policy_base_version(campaign=campaign, base=base_a)
    he = human_eval_create(campaign=campaign, model_a=v0, model_b=base_b, generation=GEN, seed=3,
                           created_by=admin, enqueue=False)
    held_out = list(Prompt.objects.filter(campaign=campaign, split="test").order_by("id").values_list("pk", flat=True))
    assert he.prompt_ids == held_out and he.prompts_count == 12 and he.status == HumanEvaluation.Status.GENERATING
    assert he.round.number == 2 and he.round.status == Round.Status.OPEN
    assert he.model_a == v0 and he.model_b.base == base_b and he.model_b.number == 0
    a, b = he.run_a, he.run_b
    assert a.kind == b.kind == TrainingRun.Kind.GENERATE and a.round == b.round == he.round
    shared = ("temperature", "top_p", "max_new_tokens", "seed", "n_per_prompt", "batch_size", "max_length")
    assert {k: a.spec[k] for k in shared} == {k: b.spec[k] for k in shared} and a.spec["seed"] == 3
    assert a.spec["model"] == base_a.source and b.spec["model"] == base_b.source
    assert open(a.spec["prompts_file"]).read() == open(b.spec["prompts_file"]).read()
    # A number samples that many held-out prompts with the seed, the same ones for the same seed.
    again = [human_eval_create(campaign=campaign, model_a=v0, model_b=base_b, prompts=5, seed=9, enqueue=False)
             for _ in range(2)]
    assert again[0].prompt_ids == again[1].prompt_ids and set(again[0].prompt_ids) < set(held_out)


@pytest.mark.django_db
def test_bad_input_is_refused_with_the_field_and_writes_nothing(two_bases, django_user_model):
    campaign, _ = make_campaign(django_user_model)
    other, _ = make_campaign(django_user_model, name="Other")
    base_a, base_b = two_bases
    v0 = policy_base_version(campaign=campaign, base=base_a)
    foreign = policy_base_version(campaign=other, base=base_a)
    reward = base_model_get_or_create(name="rm", source="x", kind=BaseModel.Kind.REWARD)
    train_prompt = Prompt.objects.filter(campaign=campaign, split="train").first()
    cases = [
        (dict(model_a=v0, model_b=v0), "model_b"),
        (dict(model_a=v0, model_b=base_a), "model_b"),  # the campaign's v0 is that base model
        (dict(model_a=foreign, model_b=base_b), "model_a"),
        (dict(model_a=v0, model_b=reward), "model_b"),
        (dict(model_a=v0, model_b=base_b, prompts=[Prompt.objects.filter(campaign=other).first().pk]), "prompts"),
        (dict(model_a=v0, model_b=base_b, prompts=0), "prompts"),
        (dict(model_a=v0, model_b=base_b, generation={"temprature": 1}), "generation"),
        (dict(model_a=v0, model_b=base_b, generation={"temperature": -1}), "spec"),
    ]
    rounds, runs = Round.objects.count(), TrainingRun.objects.count()
    for kwargs, field in cases:
        with pytest.raises(ValidationError) as err:
            human_eval_create(campaign=campaign, enqueue=False, **kwargs)
        assert err.value.field == field, (kwargs, err.value.message)
    Prompt.objects.filter(campaign=campaign, split="test").update(split="train")
    with pytest.raises(ValidationError, match="no held-out prompts") as err:
        human_eval_create(campaign=campaign, model_a=v0, model_b=base_b, enqueue=False)
    assert (Round.objects.count(), TrainingRun.objects.count(), HumanEvaluation.objects.count()) == (rounds, runs, 0)
    # An explicit list may name any prompt of the campaign.
    he = human_eval_create(campaign=campaign, model_a=v0, model_b=base_b, prompts=[train_prompt.pk], enqueue=False)
    assert he.prompt_ids == [train_prompt.pk]


def _expected_shorter(he: HumanEvaluation) -> list[str]:
    """Hand-derived outcome per item for a 'shorter is better' annotator: from the texts and their provenance."""
    labels = []
    for item in ComparisonItem.objects.filter(round=he.round).prefetch_related("responses__provenance"):
        by_side = {("a" if r.provenance.policy_id == he.model_a_id else "b"): len(r.text) for r in item.responses.all()}
        labels.append("tie" if by_side["a"] == by_side["b"] else "b" if by_side["b"] < by_side["a"] else "a")
    return labels


@pytest.mark.django_db(transaction=True)
def test_generated_items_pair_a_and_b_with_provenance_and_the_result_matches_the_judgments(
        two_bases, django_user_model):
    campaign, admin = make_campaign(django_user_model, overlap=3)
    base_a, base_b = two_bases
    he = human_eval_create(campaign=campaign, model_a=base_a, model_b=base_b, generation=GEN, enqueue=False)
    he = human_eval_generate(human_eval_id=he.pk)
    assert he.status == HumanEvaluation.Status.READY, he.error
    assert he.items_count + he.identical == 12 and he.items_count >= 8
    assert human_eval_generate(human_eval_id=he.pk).items_count == he.items_count  # a re-delivery adds nothing
    items = list(ComparisonItem.objects.filter(round=he.round).prefetch_related("responses__provenance"))
    assert len(items) == he.items_count
    first_sides = []
    for item in items:
        responses = sorted(item.responses.all(), key=lambda r: r.provenance.policy_id == he.model_b_id)
        assert [r.provenance.policy_id for r in responses] == [he.model_a_id, he.model_b_id]
        assert [r.provenance.run_id for r in responses] == [he.run_a_id, he.run_b_id]
        assert responses[0].model_name == he.model_a.label and responses[0].generation_params["seed"] == 0
        first_sides.append(item.item_responses.get(position=0).response.provenance.policy_id)
    assert len(set(first_sides)) == 2  # stored positions are shuffled, not always A first
    assert Response.objects.filter(round=he.round).count() == 2 * he.items_count

    # Two annotators prefer the shorter answer, one the longer: the majority is the shorter one per item.
    for name in ("short1", "short2"):
        SimulatedAnnotator(user=simulated_user(campaign=campaign, username=name), campaign=campaign,
                           judge=rule_shorter, name="shorter").run()
    contrarian = SimulatedAnnotator(user=simulated_user(campaign=campaign, username="long"), campaign=campaign,
                                    judge=lambda p, texts: [float(len(t)) for t in texts], name="longer")
    contrarian.run()
    assert Judgment.objects.filter(round=he.round).count() == 3 * he.items_count

    expected = _expected_shorter(he)
    result = human_eval_result(human_eval=he, n_boot=500)
    hand = (expected.count("b") + expected.count("tie") / 2) / len(expected)
    assert result["win_rate"] == pytest.approx(hand) and result["n"] == len(expected) == result["judged_items"]
    assert (result["wins_b"], result["wins_a"], result["ties"]) == (
        expected.count("b"), expected.count("a"), expected.count("tie"))
    assert result["ci_low"] <= result["win_rate"] <= result["ci_high"]
    assert result["judgments"] == 3 * he.items_count and result["aggregation"] == "majority"
    rows = {r["annotator"]: r for r in result["per_annotator"]}
    assert rows["short1"]["win_rate"] == pytest.approx(hand) and rows["short1"]["judgments"] == he.items_count
    assert rows["long"]["wins_b"] == expected.count("a") and rows["long"]["win_rate"] == pytest.approx(1 - hand)


@pytest.mark.django_db(transaction=True)
def test_the_same_weights_with_the_same_seed_write_the_same_answers_so_no_item_is_made(
        two_bases, tiny_policy_dir, django_user_model):
    campaign, _ = make_campaign(django_user_model, n_test=6)
    base_a, _ = two_bases
    twin = base_model_get_or_create(name="tiny-a-copy", source=str(tiny_policy_dir))
    he = human_eval_create(campaign=campaign, model_a=base_a, model_b=twin, generation=GEN, enqueue=False)
    he = human_eval_generate(human_eval_id=he.pk)
    assert he.status == HumanEvaluation.Status.READY
    assert (he.identical, he.items_count, he.round.items.count()) == (6, 0, 0)
    result = human_eval_result(human_eval=he)
    assert result["identical"] == 6 and result["n"] == 0 and result["win_rate"] is None


@pytest.mark.django_db(transaction=True)
def test_a_failed_generation_run_fails_the_evaluation_and_makes_no_items(two_bases, django_user_model):
    campaign, _ = make_campaign(django_user_model, n_test=4)
    base_a, _ = two_bases
    broken = base_model_get_or_create(name="missing", source="/nonexistent/model")
    he = human_eval_create(campaign=campaign, model_a=base_a, model_b=broken, generation=GEN, enqueue=False)
    he = human_eval_generate(human_eval_id=he.pk)
    assert he.status == HumanEvaluation.Status.FAILED and f"run {he.run_b_id} failed" in he.error
    assert he.round.items.count() == 0 and not ResponseProvenance.objects.filter(response__round=he.round).exists()
    assert PolicyVersion.objects.filter(label="base-missing").exists()


@pytest.mark.django_db(transaction=True)
def test_a_prompt_deleted_while_generating_is_left_out(two_bases, django_user_model):
    campaign, _ = make_campaign(django_user_model, n_test=4)
    base_a, base_b = two_bases
    he = human_eval_create(campaign=campaign, model_a=base_a, model_b=base_b, generation=GEN, enqueue=False)
    Prompt.objects.filter(pk=he.prompt_ids[1]).delete()
    he = human_eval_generate(human_eval_id=he.pk)
    assert he.status == HumanEvaluation.Status.READY
    assert he.items_count + he.identical == 3
    assert set(he.round.items.values_list("prompt_id", flat=True)) <= set(he.prompt_ids) - {he.prompt_ids[1]}
