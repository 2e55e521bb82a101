"""Shared driver of the TRL online RL trainers (GRPO, RLOO): sample ``num_generations`` completions per prompt,
score them with the reward, update a LoRA adapter on the group-relative advantage. The KL reference (``beta >
0``) is the adapter switched off, as in DPO."""

from __future__ import annotations

from datasets import Dataset

from . import checkpoints
from .common import (
    Progress,
    ProgressCallback,
    ProgressFn,
    cut_left,
    lora_config,
    loss_span,
    quiet,
    read_prompts,
    start_job,
    training_fields,
    write_metrics,
)
from .models import load_policy, load_tokenizer
from .rewards import build_reward
from .specs import GRPOSpec, RLOOSpec
from .tiny import count_params


def fit_prompts(tok, prompts: list, max_tokens: int) -> tuple[list, int]:
    """TRL 1.16's GRPO/RLOO no longer truncate prompts: cut plain-text prompts from the left here. Chat prompts
    are left whole (cutting a message list is a policy decision, not a tokenizer one)."""
    out, cut = [], 0
    for p in prompts:
        if isinstance(p, str):
            n = len(tok(p, add_special_tokens=False)["input_ids"])
            if n > max_tokens:
                p, cut = cut_left(tok, p, n - max_tokens), cut + 1
        out.append(p)
    return out, cut


def span(history: list[dict], key: str) -> tuple[float, float]:
    """Mean of ``key`` over the first and last quarter of the logged steps."""
    values = [h[key] for h in history if key in h and "loss" in h]
    if not values:
        return float("nan"), float("nan")
    k = max(1, len(values) // 4)
    return sum(values[:k]) / k, sum(values[-k:]) / k


def run_group(spec: GRPOSpec | RLOOSpec, trainer_cls, config_cls, progress: ProgressFn | None) -> dict:
    out, device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model, padding_side="left")
    model = load_policy(spec.model, dtype)
    prompts, cut = fit_prompts(tok, read_prompts(spec.prompts_file, spec.max_train_rows),
                               max(1, spec.max_length - spec.max_new_tokens))
    reward_fn = build_reward(spec.reward_model, spec.reward_function, device, spec.max_length)
    args = config_cls(
        **training_fields(spec, device, dtype, count_params(model)),
        num_generations=spec.num_generations,
        generation_batch_size=spec.generation_batch_size or spec.batch_size * spec.grad_accum,
        max_completion_length=spec.max_new_tokens,
        temperature=spec.temperature,
        top_p=spec.top_p,
        top_k=0,
        beta=spec.beta,
    )
    trainer = quiet(trainer_cls(
        model=model, reward_funcs=[reward_fn], args=args, train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=tok, peft_config=lora_config(spec, "CAUSAL_LM"),
        callbacks=[ProgressCallback(Progress(out, progress))],
    ))
    resumed = checkpoints.train(trainer, spec)  # from a checkpoint when a worker died mid-run
    trainer.model.save_pretrained(out / "adapter", selected_adapters=["default"])
    tok.save_pretrained(out / "adapter")
    history = trainer.state.log_history
    loss_first, loss_last = loss_span(history)
    reward_first, reward_last = span(history, "reward")
    return write_metrics(out, {
        "kind": spec.kind, "resumed_from_step": resumed, "prompts": len(prompts), "prompts_shortened": cut, "steps": trainer.state.global_step,
        "loss_first": loss_first, "loss_last": loss_last, "reward_first": reward_first, "reward_last": reward_last,
        "device": device.type, "dtype": str(dtype).removeprefix("torch."),
    })
