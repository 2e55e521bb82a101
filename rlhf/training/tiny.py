"""Tiny random-initialised models built at run time, for tests and smoke runs.

Nothing is downloaded: a byte-level BPE tokenizer is trained on a few KB of built-in text (well under a second) and
given a ChatML chat template, then a 2-layer Llama (hidden 64) is initialised from a seed and saved with it. The
same tokenizer backs a sequence-classification twin used as a reward backbone. Both folders load with the normal
``from_pretrained`` code paths, so a smoke run exercises exactly what a real run does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

BOS, EOS, PAD = "<|endoftext|>", "<|im_end|>", "<|pad|>"
SPECIAL_TOKENS = [BOS, "<|im_start|>", EOS, PAD]

# ChatML, as SmolLM2 and Qwen use it; the generation prompt opens an assistant turn.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORDS = (
    "the a an one two three good bad yes no cat dog bird fish red blue green small large happy sad "
    "please thank you hello world answer question help kind polite rude safe harm honest true false "
    "assistant user system human model reward policy learn train step value think write read say "
    "because when where what which who why how can will would should could must not and or but "
    "apple river stone cloud light dark quick slow warm cold open close give take make find keep "
)


def corpus(n_lines: int = 200, seed: int = 0) -> str:
    """Deterministic pseudo-sentences (about 8 KB for 200 lines) with punctuation, digits and chat markers,
    so the BPE merges cover what tests feed the model."""
    words = _WORDS.split()
    gen = torch.Generator().manual_seed(seed)
    lines = []
    for i in range(n_lines):
        idx = torch.randint(len(words), (int(torch.randint(4, 12, (1,), generator=gen)),), generator=gen)
        sentence = " ".join(words[j] for j in idx.tolist())
        lines.append(f"{sentence.capitalize()}{'.?!,'[i % 4]} {i % 10}")
    lines.append("Human: Assistant: user assistant system ' \" ( ) : ; - 0123456789")
    return "\n".join(lines)


def build_tokenizer(vocab_size: int = 512, seed: int = 0) -> PreTrainedTokenizerFast:
    """Byte-level BPE (every string is encodable, no unknown token) with ChatML specials and template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus(seed=seed).splitlines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_config(tokenizer: PreTrainedTokenizerFast, **overrides) -> LlamaConfig:
    kwargs = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
        # The usual 0.02 init gives a flat next-token distribution (entropy ~ log vocab) that LoRA cannot sharpen
        # while lm_head is frozen: RL smoke runs then see no signal. 0.3 gives peaked, movable distributions.
        initializer_range=0.3,
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def build_tiny_policy(folder: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """Save a tiny ``LlamaForCausalLM`` + tokenizer into ``folder`` and return it."""
    folder = Path(folder)
    tokenizer = build_tokenizer(vocab_size, seed)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_reward(folder: str | Path, seed: int = 0, vocab_size: int = 512) -> Path:
    """Save a tiny ``LlamaForSequenceClassification`` (one label: the reward) + tokenizer into ``folder``."""
    folder = Path(folder)
    tokenizer = build_tokenizer(vocab_size, seed)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(tiny_config(tokenizer, num_labels=1))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


_GOOD = "yes good kind polite happy thank you please help honest safe true warm".split()
_BAD = "no bad rude sad harm false cold dark slow".split()
_TOPICS = "cat dog bird fish apple river stone cloud world model".split()


def synthetic_pairs(n: int, seed: int = 0, chat: bool = False) -> list[dict]:
    """Preference rows with an obvious rule (chosen uses friendly words, rejected unfriendly ones), so a tiny
    model's reward accuracy and DPO preference accuracy must rise if training works at all."""
    rng = torch.Generator().manual_seed(seed)

    def pick(words: list[str], k: int) -> str:
        return " ".join(words[i] for i in torch.randint(len(words), (k,), generator=rng).tolist())

    rows = []
    for _ in range(n):
        question = f"Tell me about the {pick(_TOPICS, 1)} and the {pick(_TOPICS, 1)}."
        prompt = [{"role": "user", "content": question}] if chat else f"Human: {question}\nAssistant:"
        rows.append({"prompt": prompt, "chosen": " " + pick(_GOOD, 4), "rejected": " " + pick(_BAD, 4)})
    return rows


def synthetic_prompts(n: int, seed: int = 0, chat: bool = False) -> list[dict]:
    return [{"prompt": row["prompt"]} for row in synthetic_pairs(n, seed, chat)]
