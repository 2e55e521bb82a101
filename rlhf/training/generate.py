"""Sample responses: ``n_per_prompt`` completions for each prompt of a JSONL file, from a base model plus an
optional LoRA adapter, batched and seeded. Chat prompts (lists of messages) go through the tokenizer's chat
template with the assistant turn opened. Writes ``generations.jsonl`` with one row per response:
``{"prompt_index", "sample_index", "response", "finished", "params"}``.
"""

from __future__ import annotations

import torch

from .common import Progress, ProgressFn, read_prompts, start_job, write_jsonl, write_metrics
from .models import load_policy, load_tokenizer
from .specs import GenerateSpec


def encode_prompts(tok, prompts: list, max_prompt_tokens: int) -> list[list[int]]:
    """Token ids per prompt, cut from the left to ``max_prompt_tokens``. Rendered chat text already holds the
    template's special tokens, so only plain prompts get the tokenizer's own (e.g. a BOS)."""
    encoded = []
    for p in prompts:
        if isinstance(p, str):
            ids = tok(p)["input_ids"]
        else:
            text = tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False)["input_ids"]
        encoded.append(ids[-max_prompt_tokens:])
    return encoded


def left_pad(tok, batch: list[list[int]], device) -> dict:
    """Decoder-only generation continues from the last position, so padding goes on the left."""
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for i, ids in enumerate(batch):
        input_ids[i, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention[i, width - len(ids):] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device)}


def generation_kwargs(tok, temperature: float, top_p: float, max_new_tokens: int) -> dict:
    kwargs = {"max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id}
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    else:
        kwargs.update(do_sample=False)
    return kwargs


@torch.no_grad()
def sample(model, tok, prompt_ids: list[list[int]], kwargs: dict, device) -> list[tuple[str, bool]]:
    """(response text, ended with eos) per row."""
    enc = left_pad(tok, prompt_ids, device)
    out = model.generate(**enc, **kwargs)[:, enc["input_ids"].shape[1]:].cpu()
    results = []
    for row in out:
        ids = row.tolist()
        finished = tok.eos_token_id in ids
        if finished:
            ids = ids[: ids.index(tok.eos_token_id)]
        ids = [t for t in ids if t != tok.pad_token_id]
        results.append((tok.decode(ids, skip_special_tokens=True), finished))
    return results


def run(spec: GenerateSpec, progress: ProgressFn | None = None) -> dict:
    out, device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model, padding_side="left")
    model = load_policy(spec.model, dtype, adapter=spec.adapter).to(device).eval()
    prompts = read_prompts(spec.prompts_file, spec.max_prompts)
    encoded = encode_prompts(tok, prompts, max(1, spec.max_length - spec.max_new_tokens))
    kwargs = generation_kwargs(tok, spec.temperature, spec.top_p, spec.max_new_tokens)
    params = {"temperature": spec.temperature, "top_p": spec.top_p, "max_new_tokens": spec.max_new_tokens,
              "seed": spec.seed, "model": spec.model, "adapter": spec.adapter}
    # Each prompt is repeated n times inside the batch: one generate call per batch_size rows.
    jobs = [(i, k) for i in range(len(prompts)) for k in range(spec.n_per_prompt)]
    tracker = Progress(out, progress)
    n_batches = (len(jobs) + spec.batch_size - 1) // spec.batch_size
    tracker.start(n_batches)
    rows = []
    for b in range(n_batches):
        chunk = jobs[b * spec.batch_size:(b + 1) * spec.batch_size]
        # Seed per batch: a rerun of the same spec gives the same text even if an earlier batch changed length.
        torch.manual_seed(spec.seed + b)
        for (i, k), (text, finished) in zip(chunk, sample(model, tok, [encoded[i] for i, _ in chunk], kwargs, device),
                                            strict=True):
            rows.append({"prompt_index": i, "sample_index": k, "response": text, "finished": finished,
                         "params": params})
        tracker.record(b + 1, None, responses=len(rows))
    write_jsonl(out / "generations.jsonl", rows)
    return write_metrics(out, {
        "kind": spec.kind, "prompts": len(prompts), "responses": len(rows),
        "finished_fraction": sum(r["finished"] for r in rows) / max(len(rows), 1),
        "mean_response_chars": sum(len(r["response"]) for r in rows) / max(len(rows), 1),
        "device": device.type,
    })
