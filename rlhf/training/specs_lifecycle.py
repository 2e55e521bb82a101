"""Specs of the model-lifecycle jobs: pre-training, continued pre-training, SFT, classification heads,
distillation, adapter merging and evaluation suites. Same rules as ``specs.py`` (strict JSON, defaults for all but
what a job cannot guess); ``specs.SPECS`` registers every class here.

Text data:
- corpus files: ``.txt`` (the whole file is one document, as nanoGPT reads tinyshakespeare) or ``.jsonl`` rows
  ``{"text": str}`` (one document per row; documents are joined with the eos token before packing);
- instruction rows ``{"prompt": str, "response": str}`` (``prompt_field`` / ``response_field`` rename them) or
  ``{"messages": [{"role", "content"}, ...]}`` (the last message is the completion);
- classification rows ``{"text": str, "label": str | int}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .specs import JobSpec, TrainSpec, _check

PEFT_METHODS = ("full", "lora", "ia3", "prompt_tuning", "prefix_tuning")


@dataclass
class AdaptSpec(TrainSpec):
    """A training job that can update every weight (``peft="full"``) or train a PEFT adapter: LoRA (settings in
    ``lora``), IA3 (learned rescaling of keys, values and the MLP), prompt tuning (``num_virtual_tokens`` learned
    input embeddings) or prefix tuning (learned keys/values at every layer)."""

    PEFT_CHOICES: ClassVar[tuple[str, ...]] = PEFT_METHODS

    peft: str = "lora"
    num_virtual_tokens: int = 8  # prompt / prefix tuning
    ia3_target_modules: list[str] | None = None  # None: peft's default for the architecture
    save_merged: bool = False  # LoRA / IA3: also save the adapter merged into the base (a plain model folder)

    def validate(self) -> None:
        super().validate()
        _check(self.peft in self.PEFT_CHOICES, "peft", f"must be one of {self.PEFT_CHOICES}")
        _check(self.num_virtual_tokens >= 1, "num_virtual_tokens", "must be >= 1")
        _check(not (self.save_merged and self.peft in ("full", "prompt_tuning", "prefix_tuning")), "save_merged",
               "only LoRA and IA3 adapters merge into the base weights")


@dataclass
class _LMSpec(AdaptSpec):
    """Causal-LM training on packed blocks of unlabeled text."""

    train_file: str = ""
    eval_fraction: float = 0.05  # the held-out tail of the token stream, when no eval_file
    eval_file: str | None = None
    general_file: str | None = None  # a general held-out set: perplexity before/after (the forgetting check)
    eval_every: int = 0  # steps between held-out evaluations during training (0: only before/after)
    max_eval_blocks: int = 64
    grad_clip: float = 1.0
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio

    def validate(self) -> None:
        super().validate()
        _check(bool(self.train_file), "train_file", "is required")
        _check(0 < self.eval_fraction < 0.5, "eval_fraction", "must be in (0, 0.5)")
        _check(self.eval_every >= 0, "eval_every", "must be >= 0")
        _check(self.max_eval_blocks >= 1, "max_eval_blocks", "must be >= 1")
        _check(self.grad_clip > 0, "grad_clip", "must be > 0")
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")


@dataclass
class PretrainSpec(_LMSpec):
    """Pre-training from scratch: a byte-level BPE tokenizer trained on ``train_file`` and a Llama-architecture
    causal LM built from the size fields below. ``model`` names the run's base (it is not loaded): the result is
    saved as a plain model folder ``model/`` that every other job accepts as ``model``. ``max_length`` is the
    block (context) size."""

    KIND: ClassVar[str] = "pretrain"

    model: str = "scratch"
    peft: str = "full"
    lr: float = 3e-3
    max_length: int = 128
    batch_size: int = 16
    vocab_size: int = 2048
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int | None = None  # None: 4 * hidden_size
    tokenizer: str | None = None  # an existing tokenizer folder instead of training one
    max_tokenizer_chars: int = 5_000_000  # BPE is trained on the first N characters

    def validate(self) -> None:
        super().validate()
        _check(self.peft == "full", "peft", "must be 'full': a model built from scratch has no base to adapt")
        _check(self.vocab_size >= 300, "vocab_size", "must be >= 300 (256 byte symbols + specials + merges)")
        _check(self.hidden_size >= 8 and self.num_layers >= 1, "hidden_size", "hidden_size >= 8, num_layers >= 1")
        _check(self.hidden_size % self.num_heads == 0, "num_heads", "must divide hidden_size")
        _check(self.max_tokenizer_chars >= 1000, "max_tokenizer_chars", "must be >= 1000")


@dataclass
class CPTSpec(_LMSpec):
    """Continued pre-training (domain adaptation) of an existing causal LM on unlabeled text, full or PEFT."""

    KIND: ClassVar[str] = "cpt"

    lr: float = 1e-4
    adapter: str | None = None  # continue training this LoRA adapter


@dataclass
class SFTDataset:
    """One dataset of an SFT mixture. ``weight`` is its share of the mixture (normalised over all datasets)."""

    path: str = ""
    weight: float = 1.0
    name: str | None = None  # defaults to the file name
    prompt_field: str = "prompt"
    response_field: str = "response"
    max_rows: int | None = None

    def validate(self, where: str) -> None:
        _check(bool(self.path), f"{where}.path", "is required")
        _check(self.weight > 0, f"{where}.weight", "must be > 0")
        _check(self.max_rows is None or self.max_rows >= 1, f"{where}.max_rows", "must be >= 1")


@dataclass
class SFTSpec(AdaptSpec):
    """Supervised fine-tuning with TRL ``SFTTrainer``. The loss covers the completion tokens only unless
    ``completion_only_loss`` is false. With several datasets, ``mixture_size`` rows are drawn (with replacement
    when a dataset is smaller than its share) in proportion to the weights; by default the mixture has as many rows
    as the datasets together."""

    KIND: ClassVar[str] = "sft"

    datasets: list[SFTDataset] = field(default_factory=list)
    eval_file: str | None = None  # held-out prompt/response rows: completion NLL before/after (+ ROUGE/BLEU)
    general_file: str | None = None  # general text: perplexity before/after (the forgetting check)
    completion_only_loss: bool = True
    packing: bool = False
    mixture_size: int | None = None
    eval_generate: int = 0  # greedy-generate for the first N eval prompts: ROUGE / BLEU against the references
    max_new_tokens: int = 64

    def validate(self) -> None:
        super().validate()
        _check(bool(self.datasets), "datasets", "needs at least one {path, weight}")
        for i, d in enumerate(self.datasets):
            d.validate(f"datasets[{i}]")
        _check(self.mixture_size is None or self.mixture_size >= 1, "mixture_size", "must be >= 1")
        _check(self.eval_generate >= 0 and self.max_new_tokens >= 1, "eval_generate", "must be >= 0")
        _check(not (self.packing and self.peft in ("prompt_tuning", "prefix_tuning")), "packing",
               "cannot pack with prompt or prefix tuning (virtual tokens belong to one sequence)")


@dataclass
class ClassifySpec(AdaptSpec):
    """Transfer learning: a new sequence-classification head on a pretrained backbone (``model``). ``peft``:
    ``head`` trains the head alone on the frozen backbone (a linear probe), ``lora`` adds LoRA to the backbone (the
    head is trained in full, saved with the adapter), ``full`` trains every weight."""

    KIND: ClassVar[str] = "classify"
    PEFT_CHOICES: ClassVar[tuple[str, ...]] = ("head", "lora", "full")

    train_file: str = ""
    eval_file: str | None = None
    labels: list[str] | None = None  # None: the sorted distinct labels of the train file
    lr: float = 1e-3

    def validate(self) -> None:
        super().validate()
        _check(bool(self.train_file), "train_file", "is required")
        _check(self.labels is None or len(set(self.labels)) >= 2, "labels", "needs at least two distinct labels")


@dataclass
class DistillSpec(TrainSpec):
    """Knowledge distillation with TRL ``DistillationTrainer`` (on-policy: the student samples completions and
    learns the teacher's next-token distribution on them, generalised JSD with ``beta``). ``model`` is the
    teacher. The student is ``student`` (a folder sharing the teacher's tokenizer) or, when unset, a smaller copy
    of the teacher's architecture (``student_layers``, ``student_hidden``) initialised from ``seed``."""

    KIND: ClassVar[str] = "distill"

    prompts_file: str = ""
    eval_prompts_file: str | None = None  # held-out prompts for the win-rate (default: the train prompts)
    student: str | None = None
    student_layers: int = 1
    student_hidden: int | None = None  # None: half the teacher's hidden size
    peft: str = "full"
    beta: float = 0.0  # 0 forward KL, 1 reverse KL, 0.5 JSD
    temperature: float = 1.0
    max_new_tokens: int = 16
    lr: float = 1e-3
    reward_model: str | None = None
    reward_function: str | None = "rlhf.training.rewards:friendly_words"
    max_eval_prompts: int = 32

    def validate(self) -> None:
        super().validate()
        _check(bool(self.prompts_file), "prompts_file", "is required")
        _check(self.peft in ("full", "lora"), "peft", "must be 'full' or 'lora'")
        _check(0 <= self.beta <= 1, "beta", "must be in [0, 1]")
        _check(self.temperature > 0, "temperature", "must be > 0")
        _check(self.student_layers >= 1, "student_layers", "must be >= 1")
        _check((self.reward_model is None) != (self.reward_function is None), "reward_model",
               "set exactly one of reward_model / reward_function")
        _check(self.max_new_tokens >= 1 and self.max_eval_prompts >= 1, "max_new_tokens", "must be >= 1")


@dataclass
class MergeSpec(JobSpec):
    """Stack adapters on a base and export: each adapter of ``adapters`` is applied in order and merged into the
    weights (LoRA / IA3), giving one plain model folder ``model/`` with a manifest of what went in."""

    KIND: ClassVar[str] = "merge"

    adapters: list[str] = field(default_factory=list)
    task: str = "causal_lm"  # causal_lm | seq_cls

    def validate(self) -> None:
        super().validate()
        _check(bool(self.adapters), "adapters", "needs at least one adapter folder")
        _check(self.task in ("causal_lm", "seq_cls"), "task", "must be 'causal_lm' or 'seq_cls'")


@dataclass
class EvalSet:
    """A named held-out set. ``kind`` ``text``: perplexity of ``{"text"}`` rows (or of a .txt file cut into
    16-line pieces; ``max_rows`` then counts pieces);
    ``generation``: greedy answers to ``{"prompt","response"}`` rows scored by ROUGE / BLEU / BERTScore and the
    completion NLL of the references."""

    name: str = ""
    path: str = ""
    kind: str = "text"
    max_rows: int | None = 64

    def validate(self, where: str) -> None:
        _check(bool(self.name) and bool(self.path), where, "needs a name and a path")
        _check(self.kind in ("text", "generation"), f"{where}.kind", "must be 'text' or 'generation'")


@dataclass
class EvalSuiteSpec(JobSpec):
    """Run named held-out sets against a model (+ adapter) and, given the report of a previous model
    (``baseline``), a forgetting report: each metric's change, flagged when it worsens by more than
    ``threshold`` (relative)."""

    KIND: ClassVar[str] = "eval"

    adapter: str | None = None
    sets: list[EvalSet] = field(default_factory=list)
    baseline: str | None = None  # eval_report.json of the model before the job
    threshold: float = 0.05
    max_new_tokens: int = 48
    bertscore: bool = True

    def validate(self) -> None:
        super().validate()
        _check(bool(self.sets), "sets", "needs at least one {name, path, kind}")
        for i, s in enumerate(self.sets):
            s.validate(f"sets[{i}]")
        _check(len({s.name for s in self.sets}) == len(self.sets), "sets", "names must be unique")
        _check(self.threshold >= 0, "threshold", "must be >= 0")


LIFECYCLE_SPECS = (PretrainSpec, CPTSpec, SFTSpec, ClassifySpec, DistillSpec, MergeSpec, EvalSuiteSpec)
