"""Reward functions usable by name in a spec (``"reward_function": "rlhf.training.rewards:friendly_words"``) and
the adapter that turns a trained reward model folder into one.

A reward function has TRL's signature: ``f(prompts, completions, **kwargs) -> list[float]``, where a completion
is a string, or for chat prompts a list holding one assistant message.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

import torch

from .evaluate import score_texts
from .models import chat_text, load_reward_model, load_tokenizer

RewardFn = Callable[..., list[float]]

FRIENDLY = frozenset("yes good kind polite happy thank you please help honest safe true warm".split())
_WORD = re.compile(r"[a-z]+")


def completion_text(completion) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if isinstance(m, dict))


def friendly_words(prompts, completions, **kwargs) -> list[float]:
    """Share of the completion's characters that belong to friendly words: a dense, obviously learnable signal
    for smoke runs (tiny random models start near 0)."""
    scores = []
    for c in completions:
        text = completion_text(c).lower()
        good = sum(len(w) for w in _WORD.findall(text) if w in FRIENDLY)
        scores.append(good / max(len(text), 1))
    return scores


def letter_e(prompts, completions, **kwargs) -> list[float]:
    """Share of characters that are the letter 'e': the densest signal there is, for the fastest smoke tests."""
    return [completion_text(c).count("e") / max(len(completion_text(c)), 1) for c in completions]


def import_function(dotted: str) -> RewardFn:
    """``"package.module:function"`` -> the function (ValueError naming the spec field when it fails)."""
    module_name, _, attr = dotted.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"reward_function: cannot import {dotted!r}: {exc}") from exc
    if not callable(fn):
        raise ValueError(f"reward_function: {dotted!r} is not callable")
    return fn


class RewardModelFn:
    """A reward model folder as a reward function. Texts are built exactly as the reward job trained on them
    (chat prompts rendered with the reward tokenizer's template, eos appended, the tokenizer's own special tokens
    kept). TRL's built-in path instead scores ``prompt + completion`` without eos or special tokens, which for a
    BERT-like reward model drops the [CLS] its head reads."""

    def __init__(self, path: str, device: torch.device, max_length: int = 512, batch_size: int = 16):
        self.tok = load_tokenizer(path)
        self.model = load_reward_model(path, tokenizer=self.tok).to(device).eval()
        self.model.requires_grad_(False)
        self.tok.truncation_side = "left"  # an over-long text loses its oldest prompt turns, never the response
        self.max_length, self.batch_size = max_length, batch_size
        self.__name__ = "reward_model"  # TRL logs rewards under the function's name

    def texts(self, prompts, completions) -> list[str]:
        eos = self.tok.eos_token
        out = []
        for p, c in zip(prompts, completions, strict=True):
            text = chat_text(self.tok, p) + completion_text(c)
            out.append(text if text.endswith(eos) else text + eos)
        return out

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        return score_texts(self.model, self.tok, self.texts(prompts, completions), self.batch_size, self.max_length)


def build_reward(reward_model: str | None, reward_function: str | None, device: torch.device,
                 max_length: int = 512) -> RewardFn:
    if reward_model is not None:
        return RewardModelFn(reward_model, device, max_length)
    if reward_function is None:
        raise ValueError("reward_model: set exactly one of reward_model / reward_function")
    return import_function(reward_function)
