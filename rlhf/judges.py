"""Judges for simulated annotators and evaluation (no Django): a judge scores each response to a prompt,
higher is better. Built from a JSON spec:

- ``{"rule": "shorter"}``: fewer characters is better;
- ``{"rule": "contains", "word": "should"}``: more occurrences of the word (case-insensitive) is better;
- ``{"reward_model": "/path/to/merged/model"}``: a trained reward model's score (loads torch);
- ``{"function": "package.module:function"}``: ``f(prompt_text, [response_text, ...]) -> [score, ...]``.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable

Judge = Callable[[str, list[str]], list[float]]


def rule_shorter(prompt: str, responses: list[str]) -> list[float]:
    return [-float(len(r)) for r in responses]


def rule_contains(word: str) -> Judge:
    pattern = re.compile(re.escape(word.lower()))

    def judge(prompt: str, responses: list[str]) -> list[float]:
        return [float(len(pattern.findall(r.lower()))) for r in responses]

    return judge


def reward_model_judge(path: str, max_length: int = 512) -> Judge:
    from rlhf.training.device import pick_device
    from rlhf.training.rewards import RewardModelFn

    fn = RewardModelFn(path, pick_device("auto"), max_length=max_length)

    def judge(prompt: str, responses: list[str]) -> list[float]:
        return fn([prompt] * len(responses), responses)

    return judge


def judge_from_spec(spec: dict) -> Judge:
    """A judge from its JSON spec (see the module docstring); ValueError names what is wrong."""
    if not isinstance(spec, dict) or not spec:
        raise ValueError("judge: expected a non-empty object")
    if spec.get("rule") == "shorter":
        return rule_shorter
    if spec.get("rule") == "contains":
        word = spec.get("word")
        if not isinstance(word, str) or not word:
            raise ValueError("judge.word: the contains rule needs a non-empty word")
        return rule_contains(word)
    if "reward_model" in spec:
        return reward_model_judge(str(spec["reward_model"]), int(spec.get("max_length", 512)))
    if "function" in spec:
        module, _, attr = str(spec["function"]).partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"judge.function: cannot import {spec['function']!r}: {exc}") from exc
    raise ValueError(f"judge: unknown spec {spec!r} (rule shorter / contains, reward_model, function)")


def judge_name(spec: dict) -> str:
    if spec.get("rule") == "contains":
        return f"contains:{spec.get('word')}"
    if "rule" in spec:
        return str(spec["rule"])
    if "reward_model" in spec:
        return "reward_model"
    return str(spec.get("function", "judge"))[:200]
