import json

import pytest

from rlhf.training.specs import (
    DPOSpec,
    GRPOSpec,
    LoraSpec,
    PPOSpec,
    RewardSpec,
    load_spec,
    save_spec,
    spec_from_dict,
)

pytestmark = pytest.mark.training

BASE = {"output_dir": "/tmp/out", "model": "some/model"}


def test_round_trip_keeps_every_field(tmp_path):
    spec = DPOSpec(output_dir=str(tmp_path), model="m", train_file="t.jsonl", beta=0.3, lora=LoraSpec(r=4))
    save_spec(spec, tmp_path / "s.json")
    loaded = load_spec(tmp_path / "s.json")
    assert loaded == spec
    assert json.loads((tmp_path / "s.json").read_text())["kind"] == "dpo"


def test_kind_selects_the_class_and_nested_lora_is_built():
    spec = spec_from_dict({**BASE, "kind": "reward", "train_file": "t", "lora": {"r": 2, "target_modules": ["q"]}})
    assert isinstance(spec, RewardSpec)
    assert spec.lora.r == 2 and spec.lora.target_modules == ["q"]
    assert spec.lr == 1e-4 and spec.device == "auto"


def test_int_is_accepted_for_a_float_field():
    assert spec_from_dict({**BASE, "kind": "dpo", "train_file": "t", "beta": 1}).beta == 1.0


@pytest.mark.parametrize(("data", "field", "fragment"), [
    ({"kind": "dpo", "train_file": "t", "betta": 0.1}, "betta", "unknown field"),
    ({"kind": "dpo", "train_file": "t", "lora": {"rank": 4}}, "lora.rank", "unknown field"),
    ({"kind": "dpo", "train_file": "t", "beta": "high"}, "beta", "expected"),
    ({"kind": "dpo", "train_file": "t", "max_steps": 2.5}, "max_steps", "integer"),
    ({"kind": "dpo", "train_file": "t", "max_steps": True}, "max_steps", "integer"),
    ({"kind": "dpo", "train_file": "t", "beta": -1}, "beta", "> 0"),
    ({"kind": "dpo", "train_file": "t", "loss_type": "nope"}, "loss_type", "one of"),
    ({"kind": "dpo", "train_file": "t", "lora": {"dropout": 1.5}}, "lora.dropout", "[0, 1)"),
    ({"kind": "dpo", "train_file": "t", "device": "tpu"}, "device", "one of"),
    ({"kind": "dpo"}, "train_file", "required"),
    ({"kind": "reward", "train_file": "t", "save_merged": 1}, "save_merged", "true/false"),
    ({"kind": "train"}, "kind", "must be one of"),
    ({"kind": "grpo", "prompts_file": "p"}, "reward_model", "exactly one"),
    ({"kind": "grpo", "prompts_file": "p", "reward_function": "m:f", "batch_size": 6, "num_generations": 4},
     "generation_batch_size", "divisible by num_generations"),
    ({"kind": "ppo", "prompts_file": "p", "reward_model": "r", "num_minibatches": 99}, "num_minibatches", "in [1"),
])
def test_bad_specs_name_the_field(data, field, fragment):
    with pytest.raises(ValueError) as info:
        spec_from_dict({**BASE, **data})
    message = str(info.value)
    assert message.startswith(field + ":"), message
    assert fragment in message


def test_missing_required_base_field():
    with pytest.raises(ValueError, match=r"^model: required field missing"):
        spec_from_dict({"kind": "dpo", "output_dir": "o", "train_file": "t"})


def test_invalid_json_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_spec(path)


def test_group_and_ppo_defaults_are_valid():
    GRPOSpec(**BASE, prompts_file="p", reward_function="m:f").validate()
    PPOSpec(**BASE, prompts_file="p", reward_model="r").validate()
