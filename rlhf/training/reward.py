"""Reward model training: TRL ``RewardTrainer`` with LoRA on a sequence-classification backbone.

Loss (Bradley-Terry): ``-log sigmoid(r(chosen) - r(rejected) - margin)``, margin only when the rows carry one.
Prompts are cut from the left here so every pair fits ``max_length``; TRL would otherwise drop over-long pairs
without a word. Artifacts: ``adapter/`` (LoRA + head, load with ``models.load_reward_model(base, adapter=...)``),
``model/`` (adapter merged into the backbone, what GRPO/RLOO/PPO load by path), ``metrics.json``,
``progress.jsonl``.
"""

from __future__ import annotations

from datasets import Dataset
from trl import RewardConfig, RewardTrainer

from . import checkpoints
from .common import (
    Progress,
    ProgressCallback,
    ProgressFn,
    lora_config,
    loss_span,
    margin_mix,
    pairs_to_text,
    quiet,
    read_pairs,
    start_job,
    training_fields,
    write_metrics,
)
from .evaluate import pairwise_accuracy
from .models import load_reward_model, load_tokenizer
from .specs import RewardSpec
from .tiny import count_params


def load_text_pairs(tok, path: str, max_length: int, limit: int | None = None) -> tuple[list[dict], int]:
    return pairs_to_text(tok, read_pairs(path, limit), max_length)


def run(spec: RewardSpec, progress: ProgressFn | None = None) -> dict:
    out, device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model)
    model = load_reward_model(spec.model, dtype, tokenizer=tok)
    train_rows, cut_train = load_text_pairs(tok, spec.train_file, spec.max_length, spec.max_train_rows)
    eval_rows, cut_eval = ([], 0)
    if spec.eval_file:
        eval_rows, cut_eval = load_text_pairs(tok, spec.eval_file, spec.max_length)
    before = pairwise_accuracy(model.to(device), tok, eval_rows, spec.batch_size * 2, spec.max_length)

    args = RewardConfig(
        **training_fields(spec, device, dtype, count_params(model)),
        max_length=spec.max_length,
        center_rewards_coefficient=spec.center_rewards_coefficient,
    )
    trainer = quiet(RewardTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(margin_mix(train_rows)),
        processing_class=tok, peft_config=lora_config(spec, "SEQ_CLS"),
        callbacks=[ProgressCallback(Progress(out, progress))],
    ))
    dropped = len(train_rows) - len(trainer.train_dataset)  # should be 0: we fit pairs ourselves
    resumed = checkpoints.train(trainer, spec)  # from a checkpoint when a worker died mid-run
    loss_first, loss_last = loss_span(trainer.state.log_history)

    peft_model = trainer.model
    after = pairwise_accuracy(peft_model, tok, eval_rows, spec.batch_size * 2, spec.max_length)
    peft_model.save_pretrained(out / "adapter")
    tok.save_pretrained(out / "adapter")
    if spec.save_merged:
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(out / "model")
        tok.save_pretrained(out / "model")

    return write_metrics(out, {
        "kind": spec.kind, "resumed_from_step": resumed,
        "train_pairs": len(train_rows),
        "train_pairs_shortened": cut_train,
        "train_pairs_dropped_by_trainer": dropped,
        "eval_pairs": len(eval_rows),
        "eval_pairs_shortened": cut_eval,
        "steps": trainer.state.global_step,
        "loss_first": loss_first,
        "loss_last": loss_last,
        "eval_accuracy_before": before["accuracy"],
        "eval_accuracy_after": after["accuracy"],
        "eval_margin_before": before["margin"],
        "eval_margin_after": after["margin"],
        "device": device.type,
        "dtype": str(dtype).removeprefix("torch."),
    })
