"""Direct preference optimisation: TRL ``DPOTrainer`` with LoRA on a causal LM.

The reference policy is the same weights with the adapter switched off (``ref_model=None`` on a peft model), so
memory holds one model, not two. Loss (sigmoid): ``-log sigmoid(beta * ((log pi(c) - log ref(c)) -
(log pi(r) - log ref(r))))``. Prompts are cut from the left to fit ``max_length`` (TRL would cut the end of the
completion and drop pairs whose prompt alone fills the budget). Artifacts: ``adapter/``, ``metrics.json``,
``progress.jsonl``.
"""

from __future__ import annotations

from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from . import checkpoints
from .common import (
    Progress,
    ProgressCallback,
    ProgressFn,
    lora_config,
    loss_span,
    pairs_to_text,
    quiet,
    read_pairs,
    start_job,
    training_fields,
    write_metrics,
)
from .evaluate import preference_eval
from .models import load_policy, load_tokenizer
from .specs import DPOSpec
from .tiny import count_params


def run(spec: DPOSpec, progress: ProgressFn | None = None) -> dict:
    out, device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model)
    # A given adapter is trained further; TRL then freezes a copy of it under the name "ref" as reference.
    model = load_policy(spec.model, dtype, adapter=spec.adapter, trainable_adapter=True)
    train_rows, cut_train = pairs_to_text(tok, read_pairs(spec.train_file, spec.max_train_rows), spec.max_length)
    eval_rows, cut_eval = ([], 0)
    if spec.eval_file:
        eval_rows, cut_eval = pairs_to_text(tok, read_pairs(spec.eval_file), spec.max_length)
    eval_bs = spec.batch_size * 2
    before = preference_eval(model.to(device), tok, eval_rows, spec.beta, eval_bs, spec.max_length)

    args = DPOConfig(
        **training_fields(spec, device, dtype, count_params(model)),
        beta=spec.beta,
        loss_type=[spec.loss_type],
        max_length=spec.max_length,
    )
    trainer = quiet(DPOTrainer(
        model=model, ref_model=None, args=args,
        train_dataset=Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in train_rows]),
        processing_class=tok, peft_config=None if spec.adapter else lora_config(spec, "CAUSAL_LM"),
        callbacks=[ProgressCallback(Progress(out, progress))],
    ))
    dropped = len(train_rows) - len(trainer.train_dataset)
    resumed = checkpoints.train(trainer, spec)  # from a checkpoint when a worker died mid-run
    loss_first, loss_last = loss_span(trainer.state.log_history)
    after = preference_eval(trainer.model, tok, eval_rows, spec.beta, eval_bs, spec.max_length)
    trainer.model.save_pretrained(out / "adapter", selected_adapters=["default"])
    tok.save_pretrained(out / "adapter")

    metrics = {
        "kind": spec.kind, "resumed_from_step": resumed,
        "train_pairs": len(train_rows),
        "train_pairs_shortened": cut_train,
        "train_pairs_dropped_by_trainer": dropped,
        "eval_pairs": len(eval_rows),
        "eval_pairs_shortened": cut_eval,
        "steps": trainer.state.global_step,
        "loss_first": loss_first,
        "loss_last": loss_last,
        "device": device.type,
        "dtype": str(dtype).removeprefix("torch."),
    }
    metrics.update({f"eval_{k}_before": v for k, v in before.items()})
    metrics.update({f"eval_{k}_after": v for k, v in after.items()})
    return write_metrics(out, metrics)
