"""Continued pre-training (domain adaptation): next-token prediction of an existing causal LM on unlabeled domain
text, packed into blocks, full fine-tuning or a PEFT adapter (``spec.peft``).

Reported: held-out domain perplexity before/after (the point of the job) and, with ``general_file``, perplexity
on general text before/after (what the job may cost: catastrophic forgetting). Artifacts: ``model/`` (full) or
``adapter/`` (+ ``model/`` when ``save_merged``), ``loss_curve.*``, ``progress.jsonl``, ``metrics.json``.
"""

from __future__ import annotations

from .adapters import save_trained, trainable_params, wrap
from .causal_lm import pack, perplexity_of, read_corpus, split_stream, token_stream, train_blocks, write_curve
from .common import Progress, ProgressFn, start_job, write_metrics
from .models import load_policy, load_tokenizer
from .specs_lifecycle import CPTSpec


def held_out(tok, spec: CPTSpec):
    """(train blocks, domain eval blocks, general eval blocks or None)."""
    stream = token_stream(tok, read_corpus(spec.train_file, spec.max_train_rows))
    if spec.eval_file:
        train_ids, eval_ids = stream, token_stream(tok, read_corpus(spec.eval_file))
    else:
        train_ids, eval_ids = split_stream(stream, spec.eval_fraction, spec.max_length)
    general = None
    if spec.general_file:
        general = pack(token_stream(tok, read_corpus(spec.general_file)), spec.max_length)[: spec.max_eval_blocks]
    return pack(train_ids, spec.max_length), pack(eval_ids, spec.max_length)[: spec.max_eval_blocks], general


def run(spec: CPTSpec, progress: ProgressFn | None = None) -> dict:
    out, device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model)
    blocks, eval_blocks, general = held_out(tok, spec)
    base = load_policy(spec.model, dtype).to(device)
    bs = spec.batch_size
    before = {"eval_perplexity_before": perplexity_of(base, eval_blocks, bs, device)}
    if general is not None:
        before["general_perplexity_before"] = perplexity_of(base, general, bs, device)

    model = wrap(base, spec, "CAUSAL_LM", adapter=spec.adapter).to(device)
    trainable, total = trainable_params(model)
    tracker = Progress(out, progress)
    curve = train_blocks(model, blocks, spec, device, tracker, eval_blocks)
    after = {"eval_perplexity_after": perplexity_of(model, eval_blocks, bs, device)}
    if general is not None:
        after["general_perplexity_after"] = perplexity_of(model, general, bs, device)
    write_curve(out, curve)
    saved = save_trained(model, tok, out, spec)

    k = max(1, len(curve) // 10)
    return write_metrics(out, {
        "kind": spec.kind,
        "resumed_from_step": tracker.resumed_from,
        "peft": spec.peft,
        "trainable_params": trainable,
        "total_params": total,
        "train_blocks": int(len(blocks)),
        "steps": len(curve),
        "loss_first": sum(r["loss"] for r in curve[:k]) / k,
        "loss_last": sum(r["loss"] for r in curve[-k:]) / k,
        **before,
        **after,
        **{f"{name}_dir": path for name, path in saved.items()},
        "device": device.type,
    })
