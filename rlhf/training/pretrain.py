"""Pre-training from scratch: a byte-level BPE tokenizer trained on the corpus, then a Llama-architecture causal LM
built from the spec's size fields and trained on next-token prediction over packed blocks (``causal_lm.py``).

Artifacts: ``model/`` (model + tokenizer with ChatML specials and template: a base every other job accepts as
``model``), ``loss_curve.json`` / ``loss_curve.svg``, ``progress.jsonl``, ``metrics.json`` with the held-out
perplexity before (random init: about the vocabulary size) and after training.
"""

from __future__ import annotations

from .causal_lm import pack, perplexity_of, read_corpus, split_stream, token_stream, train_blocks, write_curve
from .common import Progress, ProgressFn, start_job, write_metrics
from .models import load_tokenizer
from .specs_lifecycle import PretrainSpec
from .tiny import CHATML_TEMPLATE, SPECIAL_TOKENS, count_params


def train_tokenizer(texts: list[str], vocab_size: int, max_chars: int):
    """Byte-level BPE (any string encodes, no unknown token) with the ChatML specials and template, so the
    pre-trained base can go straight on to SFT and DPO with chat data."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from .tiny import BOS, EOS, PAD

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())

    def lines():
        budget = max_chars
        for text in texts:
            for line in text.splitlines(keepends=True):
                if budget <= 0:
                    return
                budget -= len(line)
                yield line

    tok.train_from_iterator(lines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_model(spec: PretrainSpec, tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    heads = spec.num_heads
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
        num_attention_heads=heads, num_key_value_heads=heads,
        intermediate_size=spec.intermediate_size or 4 * spec.hidden_size,
        max_position_embeddings=max(spec.max_length, 256), bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


def run(spec: PretrainSpec, progress: ProgressFn | None = None) -> dict:
    out, device, dtype = start_job(spec)
    docs = read_corpus(spec.train_file, spec.max_train_rows)
    if spec.tokenizer:
        tok = load_tokenizer(spec.tokenizer)
    else:
        tok = train_tokenizer(docs, spec.vocab_size, spec.max_tokenizer_chars)
    stream = token_stream(tok, docs)
    if spec.eval_file:
        train_ids, eval_ids = stream, token_stream(tok, read_corpus(spec.eval_file))
    else:
        train_ids, eval_ids = split_stream(stream, spec.eval_fraction, spec.max_length)
    blocks = pack(train_ids, spec.max_length)
    eval_blocks = pack(eval_ids, spec.max_length)[: spec.max_eval_blocks]

    model = build_model(spec, tok).to(device=device, dtype=dtype)
    ppl_before = perplexity_of(model, eval_blocks, spec.batch_size, device)
    tracker = Progress(out, progress)
    curve = train_blocks(model, blocks, spec, device, tracker, eval_blocks)
    ppl_after = perplexity_of(model, eval_blocks, spec.batch_size, device)
    write_curve(out, curve)
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")

    k = max(1, len(curve) // 10)
    return write_metrics(out, {
        "kind": spec.kind,
        "resumed_from_step": tracker.resumed_from,
        "params": count_params(model),
        "vocab_size": len(tok),
        "train_tokens": int(len(train_ids)),
        "train_blocks": int(len(blocks)),
        "eval_tokens": int(eval_blocks.numel()),
        "tokens_per_char": round(len(stream) / max(1, sum(len(d) for d in docs)), 4),
        "steps": len(curve),
        "tokens_seen": len(curve) * spec.batch_size * spec.grad_accum * spec.max_length,
        "loss_first": sum(r["loss"] for r in curve[:k]) / k,
        "loss_last": sum(r["loss"] for r in curve[-k:]) / k,
        "eval_perplexity_before": ppl_before,
        "eval_perplexity_after": ppl_after,
        "train_seconds": curve[-1]["elapsed_s"] if curve else 0.0,
        "model_dir": str(out / "model"),
        "device": device.type,
    })
