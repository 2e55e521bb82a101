"""Job specs: one documented dataclass per training job, loaded from and saved to JSON.

A spec is the whole contract between the platform and a training run: the web side writes one JSON file, the worker
runs ``python -m rlhf.training spec.json``. Every field has a default except the few a job cannot guess (``kind``,
``output_dir``, ``model`` and the data files). Loading is strict on purpose: an unknown field, a wrong type or an
out-of-range value raises ``ValueError`` naming the field, so a typo in a queued job fails in milliseconds instead
of silently training with a default.

Data files are JSONL:
- preference rows ``{"prompt", "chosen", "rejected"}`` with an optional numeric ``"margin"``;
- prompt rows ``{"prompt": str | [{"role", "content"}, ...]}``.

``model`` is a Hugging Face id, a local folder, or one of the shipped models ``builtin:smollm2-135m-instruct``
(policy) and ``builtin:all-minilm-l6-v2`` (reward backbone); see ``models.py``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# Loss types of TRL 1.16 DPOConfig.loss_type (dpo_config.py).
DPO_LOSSES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)


@dataclass
class LoraSpec:
    """LoRA adapter settings (peft ``LoraConfig``)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    # "all-linear" lets peft find every linear layer except the output head, whatever the architecture.
    target_modules: list[str] | str = "all-linear"

    def validate(self) -> None:
        _check(self.r >= 1, "lora.r", "must be >= 1")
        _check(self.alpha >= 1, "lora.alpha", "must be >= 1")
        _check(0.0 <= self.dropout < 1.0, "lora.dropout", "must be in [0, 1)")
        _check(bool(self.target_modules), "lora.target_modules", "must not be empty")


@dataclass
class JobSpec:
    """Fields every job has."""

    KIND: ClassVar[str] = ""

    output_dir: str
    model: str
    kind: str = ""
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "auto"  # auto: bf16 on CUDA when supported, fp32 elsewhere
    max_length: int = 512  # tokens of prompt + response
    batch_size: int = 8

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = self.KIND

    def validate(self) -> None:
        _check(self.kind == self.KIND, "kind", f"must be {self.KIND!r} for {type(self).__name__}")
        _check(bool(self.output_dir), "output_dir", "must not be empty")
        _check(bool(self.model), "model", "must not be empty")
        _check(self.device in DEVICES, "device", f"must be one of {DEVICES}")
        _check(self.dtype in DTYPES, "dtype", f"must be one of {DTYPES}")
        _check(self.max_length >= 8, "max_length", "must be >= 8")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")


@dataclass
class TrainSpec(JobSpec):
    """Fields of every job that trains a LoRA adapter."""

    max_steps: int = -1  # > 0 overrides epochs
    epochs: float = 1.0
    grad_accum: int = 1
    lr: float = 1e-4
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_train_rows: int | None = None  # take the first N rows of the train file (smoke runs, slices)
    lora: LoraSpec = field(default_factory=LoraSpec)
    # Save a checkpoint into output_dir every N optimizer steps (0: never); a job started again on the same spec
    # and folder (e.g. after its worker died) resumes from the newest one. The last 2 are kept; see checkpoints.py.
    checkpoint_every: int = 50

    def validate(self) -> None:
        super().validate()
        _check(self.max_steps == -1 or self.max_steps >= 1, "max_steps", "must be -1 (use epochs) or >= 1")
        _check(self.epochs > 0, "epochs", "must be > 0")
        _check(self.grad_accum >= 1, "grad_accum", "must be >= 1")
        _check(0 < self.lr < 1, "lr", "must be in (0, 1)")
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)")
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _check(self.max_train_rows is None or self.max_train_rows >= 1, "max_train_rows", "must be >= 1")
        _check(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0: no checkpoints)")
        self.lora.validate()


@dataclass
class RewardSpec(TrainSpec):
    """Reward model: a sequence-classification backbone with one output, trained on preference pairs
    (Bradley-Terry loss, minus ``margin`` when the rows have one)."""

    KIND: ClassVar[str] = "reward"

    train_file: str = ""
    eval_file: str | None = None  # held-out pairs: pairwise accuracy before and after
    center_rewards_coefficient: float | None = None  # 0.01 keeps rewards near zero mean
    save_merged: bool = True  # also save adapter merged into the backbone: GRPO/RLOO/PPO load it by path

    def validate(self) -> None:
        super().validate()
        _check(bool(self.train_file), "train_file", "is required")


@dataclass
class DPOSpec(TrainSpec):
    """Direct preference optimisation of a causal LM with LoRA; the reference is the same model with the
    adapter disabled."""

    KIND: ClassVar[str] = "dpo"

    train_file: str = ""
    eval_file: str | None = None
    beta: float = 0.1
    loss_type: str = "sigmoid"
    adapter: str | None = None  # continue from this adapter (and use it as reference)

    def validate(self) -> None:
        super().validate()
        _check(bool(self.train_file), "train_file", "is required")
        _check(self.beta > 0, "beta", "must be > 0")
        _check(self.loss_type in DPO_LOSSES, "loss_type", f"must be one of {DPO_LOSSES}")


@dataclass
class GenerateSpec(JobSpec):
    """Sample ``n_per_prompt`` responses per prompt from a model (+ optional adapter)."""

    KIND: ClassVar[str] = "generate"

    prompts_file: str = ""
    adapter: str | None = None
    n_per_prompt: int = 1
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 64
    max_prompts: int | None = None

    def validate(self) -> None:
        super().validate()
        _check(bool(self.prompts_file), "prompts_file", "is required")
        _check(self.n_per_prompt >= 1, "n_per_prompt", "must be >= 1")
        _check(self.temperature >= 0, "temperature", "must be >= 0")
        _check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        _check(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        _check(self.max_prompts is None or self.max_prompts >= 1, "max_prompts", "must be >= 1")


@dataclass
class OnlineRLSpec(TrainSpec):
    """Fields shared by the online RL jobs (GRPO, RLOO, PPO): prompts in, sampled completions scored by a reward
    model folder or a Python function ``"package.module:function"`` with TRL's signature
    ``f(prompts, completions, **kw) -> list[float]``."""

    prompts_file: str = ""
    reward_model: str | None = None
    reward_function: str | None = None
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.0  # KL penalty to the reference (adapter disabled)

    def validate(self) -> None:
        super().validate()
        _check(bool(self.prompts_file), "prompts_file", "is required")
        _check((self.reward_model is None) != (self.reward_function is None), "reward_model",
               "set exactly one of reward_model / reward_function")
        if self.reward_function is not None:
            _check(":" in self.reward_function, "reward_function", "must look like 'package.module:function'")
        _check(self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1")
        _check(self.temperature > 0, "temperature", "must be > 0 (sampling is required)")
        _check(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        _check(self.beta >= 0, "beta", "must be >= 0")


@dataclass
class _GroupSpec(OnlineRLSpec):
    num_generations: int = 4  # completions per prompt, the group the advantage is computed in
    generation_batch_size: int | None = None  # completions per generation round; default batch_size * grad_accum

    def validate(self) -> None:
        super().validate()
        _check(self.num_generations >= 2, "num_generations", "must be >= 2 (advantages compare a group)")
        gen = self.generation_batch_size or self.batch_size * self.grad_accum
        _check(gen % self.num_generations == 0, "generation_batch_size",
               f"{gen} (default batch_size * grad_accum) must be divisible by num_generations "
               f"({self.num_generations})")
        _check(gen % self.batch_size == 0, "generation_batch_size", f"{gen} must be divisible by batch_size")


@dataclass
class GRPOSpec(_GroupSpec):
    """Group relative policy optimisation (TRL ``GRPOTrainer``)."""

    KIND: ClassVar[str] = "grpo"


@dataclass
class RLOOSpec(_GroupSpec):
    """REINFORCE leave-one-out (TRL ``RLOOTrainer``)."""

    KIND: ClassVar[str] = "rloo"


@dataclass
class PPOSpec(OnlineRLSpec):
    """Proximal policy optimisation with a value head (implemented in ``ppo.py``; TRL 1.16 has none)."""

    KIND: ClassVar[str] = "ppo"

    beta: float = 0.05  # KL penalty per token, folded into the reward
    rollout_batch_size: int = 16  # prompts sampled per PPO iteration
    ppo_epochs: int = 4
    num_minibatches: int = 2
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1

    def validate(self) -> None:
        super().validate()
        _check(self.rollout_batch_size >= 1, "rollout_batch_size", "must be >= 1")
        _check(self.ppo_epochs >= 1, "ppo_epochs", "must be >= 1")
        _check(1 <= self.num_minibatches <= self.rollout_batch_size, "num_minibatches",
               "must be in [1, rollout_batch_size]")
        _check(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        _check(0 <= self.lam <= 1, "lam", "must be in [0, 1]")
        _check(self.cliprange > 0, "cliprange", "must be > 0")
        _check(self.cliprange_value > 0, "cliprange_value", "must be > 0")
        _check(self.vf_coef >= 0, "vf_coef", "must be >= 0")


SPECS: dict[str, type[JobSpec]] = {
    cls.KIND: cls for cls in (RewardSpec, DPOSpec, GenerateSpec, GRPOSpec, RLOOSpec, PPOSpec)
}


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{name}: {message}")


def _convert(value: Any, hint: Any, name: str) -> Any:
    """Check ``value`` against a type hint and build nested dataclasses; raise ValueError naming ``name``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, name)
            except ValueError:
                continue
        raise ValueError(f"{name}: expected {_type_name(hint)}, got {type(value).__name__} {value!r}")
    if origin is Literal:
        _check(value in args, name, f"must be one of {args}")
        return value
    if origin is list:
        _check(isinstance(value, list), name, f"expected a list, got {type(value).__name__}")
        return [_convert(v, args[0], f"{name}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        _check(isinstance(value, dict), name, f"expected an object, got {type(value).__name__}")
        return _from_dict(hint, value, prefix=f"{name}.")
    # bool is an int subclass: reject True for an int field and 1 for a bool field.
    if hint is bool:
        _check(isinstance(value, bool), name, f"expected true/false, got {value!r}")
    elif hint is int:
        _check(isinstance(value, int) and not isinstance(value, bool), name, f"expected an integer, got {value!r}")
    elif hint is float:
        _check(isinstance(value, int | float) and not isinstance(value, bool), name,
               f"expected a number, got {value!r}")
        value = float(value)
    elif hint is str:
        _check(isinstance(value, str), name, f"expected a string, got {value!r}")
    return value


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "")


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{prefix}{unknown[0]}: unknown field for {cls.__name__} (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{prefix}{name}: required field missing")
    return cls(**kwargs)


def spec_from_dict(data: dict[str, Any]) -> JobSpec:
    """Build and validate the spec named by ``data["kind"]``."""
    if not isinstance(data, dict):
        raise ValueError(f"spec: expected a JSON object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in SPECS:
        raise ValueError(f"kind: must be one of {sorted(SPECS)}, got {kind!r}")
    spec = _from_dict(SPECS[kind], data)
    spec.validate()
    return spec


def load_spec(path: str | Path) -> JobSpec:
    """Read a spec JSON file. Raises ValueError (bad JSON or bad spec) or OSError (unreadable file)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"spec: invalid JSON in {path}: {exc}") from exc
    return spec_from_dict(data)


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def save_spec(spec: JobSpec, path: str | Path) -> None:
    spec.validate()
    Path(path).write_text(json.dumps(spec_to_dict(spec), indent=2) + "\n", encoding="utf-8")


# The model-lifecycle jobs (pre-training, SFT, distillation, ...) live in their own module; imported last because
# it builds on the classes above.
from .specs_lifecycle import LIFECYCLE_SPECS  # noqa: E402

SPECS.update({cls.KIND: cls for cls in LIFECYCLE_SPECS})
