"""Instruction tuning (SFT): TRL ``SFTTrainer`` on prompt/response or chat rows, full fine-tuning or a PEFT
adapter, loss on the completion tokens only by default, several datasets mixed by weight.

Rows become TRL's prompt-completion format (``{"prompt", "completion"}``), for which ``SFTTrainer`` builds a
``completion_mask`` and, with ``completion_only_loss`` (TRL 1.16 ``SFTConfig`` field; its default ``None`` means
"on for prompt-completion data"), sets the prompt labels to -100. Chat rows (``{"messages": [...]}``) become a
conversational prompt (every message but the last) and completion (the last), so the same mask applies; if any row
of the mixture is chat, plain rows are turned into a user/assistant exchange so the whole set shares one format.

Reported: train loss, the share of tokens masked out of the loss, per-dataset row counts, and on ``eval_file``
the completion perplexity before/after (+ ROUGE / BLEU of greedy answers with ``eval_generate``), and on
``general_file`` the text perplexity before/after (forgetting).
"""

from __future__ import annotations

import random
from pathlib import Path

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from . import checkpoints
from .adapters import save_trained, trainable_params, wrap
from .common import (
    Progress,
    ProgressCallback,
    ProgressFn,
    loss_span,
    quiet,
    read_jsonl,
    start_job,
    training_fields,
    write_metrics,
)
from .metrics import completion_perplexity, text_perplexity
from .models import chat_text, load_policy, load_tokenizer
from .specs_lifecycle import SFTDataset, SFTSpec


def seam(prompt: str, response: str) -> str:
    """The response, with a leading space when neither side has whitespace at the seam. TRL tokenises prompt +
    completion together; "...sentences" + "Yes" would merge into one BPE token across the boundary and shift
    the completion mask (TRL warns "the tokenized prompt is not a prefix ..."). The prompt is left untouched so a
    trained model is prompted at inference exactly as its users (and the generate / distill jobs) prompt it."""
    if prompt and response and not prompt[-1].isspace() and not response[0].isspace():
        return " " + response
    return response


def to_example(row: dict, ds: SFTDataset, where: str) -> dict:
    """One row as ``{"prompt", "completion"}`` (strings, or message lists for chat rows)."""
    if "messages" in row:
        msgs = row["messages"]
        if not (isinstance(msgs, list) and len(msgs) >= 2 and all(isinstance(m, dict) for m in msgs)):
            raise ValueError(f"{where}: 'messages' must be a list of at least two {{role, content}} objects")
        if msgs[-1].get("role") != "assistant":
            raise ValueError(f"{where}: the last message must be the assistant's (it is the completion)")
        return {"prompt": msgs[:-1], "completion": [msgs[-1]]}
    prompt, response = row.get(ds.prompt_field), row.get(ds.response_field)
    if not isinstance(prompt, str | list) or not isinstance(response, str):
        raise ValueError(f"{where}: needs '{ds.prompt_field}' (text or messages) and '{ds.response_field}' (text), "
                         "or 'messages'")
    if isinstance(prompt, list):
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": response}]}
    return {"prompt": prompt, "completion": seam(prompt, response)}


def as_chat(example: dict) -> dict:
    if isinstance(example["prompt"], list):
        return example
    return {"prompt": [{"role": "user", "content": example["prompt"]}],
            "completion": [{"role": "assistant", "content": example["completion"].lstrip()}]}


def load_dataset_rows(ds: SFTDataset, limit: int | None = None) -> list[dict]:
    rows = read_jsonl(ds.path, ds.max_rows if limit is None else limit)
    return [to_example(r, ds, f"{ds.path}: row {i}") for i, r in enumerate(rows, 1)]


def build_mixture(datasets: list[SFTDataset], seed: int, size: int | None) -> tuple[list[dict], dict]:
    """Rows drawn from each dataset in proportion to its weight: ``size`` in all (default: every row once when the
    weights match the sizes). A dataset smaller than its share is repeated, then topped up at random."""
    rng = random.Random(seed)
    loaded = [(d.name or Path(d.path).stem, d.weight, load_dataset_rows(d)) for d in datasets]
    for name, _, rows in loaded:
        if not rows:
            raise ValueError(f"datasets: {name} has no rows")
    total = size or sum(len(rows) for _, _, rows in loaded)
    weight_sum = sum(w for _, w, _ in loaded)
    mixture, counts = [], {}
    for name, weight, rows in loaded:
        n = max(1, round(total * weight / weight_sum))
        picked = rows * (n // len(rows)) + rng.sample(rows, n % len(rows))
        counts[name] = n
        mixture.extend(picked)
    rng.shuffle(mixture)
    if any(isinstance(r["prompt"], list) for r in mixture):
        mixture = [as_chat(r) for r in mixture]
    return mixture, counts


def eval_texts(tok, rows: list[dict]) -> tuple[list[str], list[str]]:
    """Prompts rendered as the model sees them, and completions with the eos that ends them."""
    prompts, completions = [], []
    for r in rows:
        if isinstance(r["prompt"], list):
            prompts.append(chat_text(tok, r["prompt"]))
            completions.append(r["completion"][0]["content"] + tok.eos_token)
        else:
            prompts.append(r["prompt"])
            completions.append(r["completion"] + tok.eos_token)
    return prompts, completions


def evaluate_model(model, tok, spec: SFTSpec, eval_rows: list[dict], general: list[str], device) -> dict:
    from .metrics import generation_scores

    result = {}
    if eval_rows:
        prompts, completions = eval_texts(tok, eval_rows)
        result["eval_completion_perplexity"] = completion_perplexity(model, tok, prompts, completions,
                                                                     max_length=spec.max_length)
        if spec.eval_generate:
            n = spec.eval_generate
            refs = [c.removesuffix(tok.eos_token) for c in completions[:n]]
            scores = generation_scores(model, tok, prompts[:n], refs, spec.max_new_tokens, device,
                                       max_length=spec.max_length, bertscore=False)
            result.update({f"eval_{k}": v for k, v in scores.items()})
    if general:
        result["general_perplexity"] = text_perplexity(model, tok, general, max_length=spec.max_length)
    return result


def run(spec: SFTSpec, progress: ProgressFn | None = None) -> dict:
    out, device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model)
    rows, counts = build_mixture(spec.datasets, spec.seed, spec.mixture_size)
    eval_rows = []
    if spec.eval_file:
        eval_rows = load_dataset_rows(SFTDataset(path=spec.eval_file, prompt_field=spec.datasets[0].prompt_field,
                                                 response_field=spec.datasets[0].response_field))
        if rows and isinstance(rows[0]["prompt"], list):  # a chat mixture: evaluate in the format trained on
            eval_rows = [as_chat(r) for r in eval_rows]
    general = []
    if spec.general_file:
        from .causal_lm import read_text_set

        general = read_text_set(spec.general_file, max_rows=64)
    model = wrap(load_policy(spec.model, dtype), spec, "CAUSAL_LM").to(device)
    before = evaluate_model(model, tok, spec, eval_rows, general, device)
    trainable, total = trainable_params(model)

    args = SFTConfig(**training_fields(spec, device, dtype, total), max_length=spec.max_length,
                     completion_only_loss=spec.completion_only_loss, packing=spec.packing)
    trainer = quiet(SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                               callbacks=[ProgressCallback(Progress(out, progress))]))
    masked = masked_share(trainer.train_dataset)
    resumed = checkpoints.train(trainer, spec)  # from a checkpoint when a worker died mid-run
    loss_first, loss_last = loss_span(trainer.state.log_history)
    after = evaluate_model(trainer.model, tok, spec, eval_rows, general, device)
    saved = save_trained(trainer.model, tok, out, spec)

    metrics = {"kind": spec.kind, "resumed_from_step": resumed, "peft": spec.peft, "trainable_params": trainable, "total_params": total,
               "train_rows": len(rows), "rows_per_dataset": counts, "prompt_token_share_masked": masked,
               "steps": trainer.state.global_step, "loss_first": loss_first, "loss_last": loss_last,
               **{f"{k}_before": v for k, v in before.items()}, **{f"{k}_after": v for k, v in after.items()},
               **{f"{name}_dir": path for name, path in saved.items()}, "device": device.type}
    return write_metrics(out, metrics)


def masked_share(dataset) -> float:
    """Share of training tokens left out of the loss (label -100: prompt tokens); 0 means the prompt is trained
    on. TRL 1.16 folds its ``completion_mask`` into a ``labels`` column while preparing the dataset."""
    if "labels" not in dataset.column_names:
        return 0.0
    labels = dataset["labels"]
    total = sum(len(row) for row in labels)
    return sum(t == -100 for row in labels for t in row) / max(total, 1)
