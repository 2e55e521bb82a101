"""Plumbing shared by the jobs: JSONL data, progress records, metrics files, LoRA and TrainingArguments fields,
and left-truncation of preference pairs."""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import TrainerCallback
from transformers.utils import logging as hf_logging

from . import checkpoints
from .device import pick_device, pick_dtype, trainer_kwargs
from .specs import JobSpec, TrainSpec, spec_to_dict

ProgressFn = Callable[[dict], None]


def read_jsonl(path: str | Path, limit: int | None = None) -> list[dict]:
    """Rows of a JSONL file; blank lines skipped; a bad line raises ValueError with its 1-based number."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object")
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    return rows


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_pairs(path: str | Path, limit: int | None = None) -> list[dict]:
    rows = read_jsonl(path, limit)
    for i, row in enumerate(rows, 1):
        missing = {"prompt", "chosen", "rejected"} - set(row)
        if missing:
            raise ValueError(f"{path}: row {i} lacks {sorted(missing)}")
    return rows


def read_prompts(path: str | Path, limit: int | None = None) -> list[Any]:
    rows = read_jsonl(path, limit)
    for i, row in enumerate(rows, 1):
        if not isinstance(row.get("prompt"), str | list):
            raise ValueError(f"{path}: row {i}: 'prompt' must be a string or a list of chat messages")
    return [row["prompt"] for row in rows]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def start_job(spec: JobSpec) -> tuple[Path, torch.device, torch.dtype]:
    """Validate, create output_dir, save the spec next to the artifacts, pick device/dtype, quiet HF bars (the
    CLI draws its own). A checkpoint of the same spec in output_dir is left for the job to resume
    (``checkpoints.py``)."""
    spec.validate()
    out = Path(spec.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec_to_dict(spec), indent=2) + "\n", encoding="utf-8")
    checkpoints.prepare(out, spec)  # progress.jsonl: kept up to a checkpoint being resumed, else emptied
    hf_logging.disable_progress_bar()
    # TRL 1.16 still reads the pre-5.23 `is_gradient_checkpointing` name; the warning is TRL's, not ours.
    warnings.filterwarnings("ignore", message=".*deprecated and will be removed in v6.*", category=FutureWarning)
    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    seed_everything(spec.seed)
    device = pick_device(spec.device)
    return out, device, pick_dtype(spec.dtype, device)


def write_metrics(out: Path, metrics: dict) -> dict:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
    (out / "metrics.json").write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return clean


class Progress:
    """Appends one JSON line per step to ``progress.jsonl`` (step, loss, steps/s, ETA) and forwards the record
    to the caller's function, e.g. a Celery task updating the job row."""

    def __init__(self, out: Path, fn: ProgressFn | None = None):
        self.path, self.fn = out / "progress.jsonl", fn
        self.t0, self.total, self.resumed_from = time.monotonic(), 0, 0

    def start(self, total: int, resumed_from: int = 0) -> None:
        """Training starts now (at ``resumed_from`` when a checkpoint was resumed: one record says so, and the
        rate counts only the steps trained since)."""
        self.t0, self.total, self.resumed_from = time.monotonic(), total, resumed_from
        if resumed_from:
            self.record(resumed_from, None, resumed_from_step=resumed_from)

    def record(self, step: int, loss: float | None, **extra: Any) -> dict:
        elapsed = time.monotonic() - self.t0
        rate = (step - self.resumed_from) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 and self.total else None
        rec = {"step": step, "total": self.total, "loss": loss, "steps_per_s": round(rate, 4),
               "eta_s": None if eta is None else round(eta, 1), **extra}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        if self.fn is not None:
            self.fn(rec)
        return rec


class ProgressCallback(TrainerCallback):
    """Bridges a transformers Trainer's logs to :class:`Progress`."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def on_train_begin(self, args, state, control, **kwargs):
        # On a resumed run the state was loaded from the checkpoint: global_step is where it continues.
        self.progress.start(state.max_steps, resumed_from=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" not in logs:  # eval logs and the final train summary
            return
        loss = logs.pop("loss")
        extra = {k: v for k, v in logs.items() if isinstance(v, int | float) and k not in ("step",)}
        self.progress.record(state.global_step, loss, **extra)


def lora_config(spec: TrainSpec, task_type: str, modules_to_save: list[str] | None = None):
    from peft import LoraConfig

    return LoraConfig(
        r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
        target_modules=spec.lora.target_modules, task_type=task_type, modules_to_save=modules_to_save,
    )


def training_fields(spec: TrainSpec, device: torch.device, dtype: torch.dtype, n_params: int) -> dict:
    """TrainingArguments fields common to the TRL jobs. Checkpoints every ``checkpoint_every`` steps into
    output_dir (``checkpoints.py``: resumed by ``checkpoints.train``); TRL's own bars and reporters are off:
    progress goes through ProgressCallback."""
    return {
        "output_dir": spec.output_dir,
        "seed": spec.seed,
        "data_seed": spec.seed,
        "per_device_train_batch_size": spec.batch_size,
        "per_device_eval_batch_size": spec.batch_size,
        "gradient_accumulation_steps": spec.grad_accum,
        "learning_rate": spec.lr,
        "num_train_epochs": spec.epochs,
        "max_steps": spec.max_steps,
        "warmup_steps": spec.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
        "weight_decay": spec.weight_decay,
        "logging_steps": 1,
        **checkpoints.trainer_fields(spec),
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        **trainer_kwargs(device, dtype, n_params),
    }


def _token_count(tok, text: str) -> int:
    # Same call TRL makes on text rows (special tokens included), so our count is the trainer's count.
    return len(tok(text)["input_ids"])


def cut_left(tok, text: str, n_tokens: int) -> str:
    """Drop the first ``n_tokens`` tokens of ``text``, cutting at a character offset so no token is split."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if n_tokens >= len(offsets):
        return ""
    return text[offsets[n_tokens][0]:]


def cut_right(tok, text: str, keep_tokens: int) -> str:
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if keep_tokens >= len(offsets):
        return text
    return text[: offsets[keep_tokens][0]] if keep_tokens > 0 else ""


def fit_pair(tok, prompt: str, chosen: str, rejected: str, max_length: int) -> tuple[str, str, str, bool]:
    """Make ``prompt + response + eos`` fit ``max_length`` tokens for both responses, cutting the prompt from the
    LEFT (the latest turns matter most). Only when a response alone does not fit with a quarter of the budget
    left for the prompt is the response cut from the right. Returns the texts and whether anything was cut.

    TRL's RewardTrainer silently DROPS over-long pairs (20% of HH pairs at 256 tokens) and DPOTrainer drops
    pairs whose prompt fills max_length; doing it here keeps every pair and lets the job report the count."""
    eos = tok.eos_token
    chosen = chosen if chosen.endswith(eos) else chosen + eos
    rejected = rejected if rejected.endswith(eos) else rejected + eos
    shortened = False
    prompt_floor = max_length // 4
    n_special = _token_count(tok, "")  # e.g. [CLS] [SEP] for BERT-likes
    for attempt in range(8):  # token merges at the seam can shift counts by one or two: re-check
        over = max(_token_count(tok, prompt + chosen), _token_count(tok, prompt + rejected)) - max_length
        if over <= 0:
            return prompt, chosen, rejected, shortened
        shortened = True
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        if n_prompt - over >= prompt_floor:
            prompt = cut_left(tok, prompt, over + attempt)
            continue
        keep = min(n_prompt, prompt_floor)
        prompt = cut_left(tok, prompt, n_prompt - keep)
        budget = max(1, max_length - keep - n_special - 1 - attempt)  # -1: the eos
        chosen = cut_right(tok, chosen.removesuffix(eos), budget) + eos
        rejected = cut_right(tok, rejected.removesuffix(eos), budget) + eos
    raise ValueError(f"could not fit a pair into max_length={max_length} tokens")


def pairs_to_text(tok, rows: list[dict], max_length: int) -> tuple[list[dict], int]:
    """Preference rows as plain-text rows that fit ``max_length``; chat prompts are rendered with the
    tokenizer's template, chat responses reduced to their content. Returns (rows, number shortened)."""
    out, shortened = [], 0
    for row in rows:
        prompt = row["prompt"]
        if not isinstance(prompt, str):
            prompt = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        chosen, rejected = (_content(row["chosen"]), _content(row["rejected"]))
        p, c, r, cut = fit_pair(tok, prompt, chosen, rejected, max_length)
        shortened += cut
        new = {"prompt": p, "chosen": c, "rejected": r}
        if row.get("margin") is not None:
            new["margin"] = float(row["margin"])
        out.append(new)
    return out, shortened


def _content(response) -> str:
    if isinstance(response, str):
        return response
    if isinstance(response, list) and response and isinstance(response[-1], dict):
        return str(response[-1].get("content", ""))
    raise ValueError(f"response must be a string or chat messages, got {type(response).__name__}")


def margin_mix(rows: list[dict]) -> list[dict]:
    """TRL's collator only reads 'margin' when the FIRST row of a batch has it; give rows without one 0.0 so a
    partly-annotated file is used consistently."""
    if any("margin" in r for r in rows):
        for r in rows:
            r.setdefault("margin", 0.0)
    return rows


def quiet(trainer):
    """With ``disable_tqdm`` transformers adds a PrinterCallback that prints every log dict to stdout; the
    progress file and the CLI bar replace it."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def loss_span(history: list[dict]) -> tuple[float, float]:
    """Mean training loss over the first and the last quarter of logged steps (single steps are noisy)."""
    values = [h["loss"] for h in history if "loss" in h]
    if not values:
        return float("nan"), float("nan")
    k = max(1, len(values) // 4)
    return sum(values[:k]) / k, sum(values[-k:]) / k
