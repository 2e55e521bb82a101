"""Hosted trainers' fine-tuning files read back (``exporters.chat_formats`` writes them).

- ``openai-dpo``: ``{"input": {"messages"}, "preferred_output": [assistant], "non_preferred_output":
  [assistant]}`` -> a comparison item with its known preference (preferred first).
- ``openai-sft``: ``{"messages": [..., assistant]}``, ``bedrock``: ``{"prompt", "completion"}`` and
  ``bedrock-conversation``: ``{"schemaVersion", "system", "messages"}`` carry one answer and no preference:
  they become prompts, the final answer kept as the prompt's ``metadata["completion"]``.

Only ``openai-dpo`` is recognised by ``auto``: the others share their keys with ``prompts-jsonl``, so they are
read only when named."""
from __future__ import annotations

from typing import Any

from ..services.items import ItemSpec, PromptSpec
from .base import (
    Context,
    Format,
    RecordError,
    chat_prompt,
    extras,
    messages,
    need_object,
    pair_item,
    register,
    text,
)


def _one_answer(value: Any, where: str, ctx: Context) -> str:
    found = messages(value, where, ctx)
    if len(found) != 1 or found[0]["role"] != "assistant":
        raise RecordError(where, "expected exactly one assistant message")
    return found[0]["content"]


def _split_last_answer(found: list[dict], where: str) -> tuple[list[dict], str]:
    if len(found) < 2 or found[-1]["role"] != "assistant":
        raise RecordError(where, "expected the conversation to end with an assistant message after the prompt")
    if found[-2]["role"] == "assistant":
        raise RecordError(where, "the prompt's last message is the assistant's: there is nothing to answer")
    return found[:-1], found[-1]["content"]


@register
class OpenAiDpo(Format):
    name = "openai-dpo"
    detect_order = 25
    help = 'OpenAI DPO: {"input": {"messages"}, "preferred_output": [...], "non_preferred_output": [...]}'

    @classmethod
    def detect(cls, record: Any) -> bool:
        return isinstance(record, dict) and "preferred_output" in record

    def parse(self, record: Any, ctx: Context) -> list[ItemSpec]:
        record = need_object(record)
        given = record.get("input")
        if not isinstance(given, dict):
            raise RecordError("input", 'expected an object with "messages"')
        prompt = chat_prompt(given.get("messages"), "input.messages", ctx)
        chosen = _one_answer(record.get("preferred_output"), "preferred_output", ctx)
        rejected = _one_answer(record.get("non_preferred_output"), "non_preferred_output", ctx)
        extra = extras(record, {"input", "preferred_output", "non_preferred_output"}, ctx)
        return [pair_item(prompt=PromptSpec(messages=prompt), chosen=chosen, rejected=rejected, ctx=ctx,
                          item_metadata=extra)]


class _PromptWithAnswer(Format):
    produces = "prompts"

    def parse(self, record: Any, ctx: Context) -> list[PromptSpec]:
        spec = self.prompt(need_object(record), ctx)
        return [spec]


@register
class OpenAiSft(_PromptWithAnswer):
    name = "openai-sft"
    help = 'OpenAI chat fine-tuning {"messages": [...]}: prompts, the last assistant turn kept as metadata'

    def prompt(self, record: dict, ctx: Context) -> PromptSpec:
        prompt, answer = _split_last_answer(messages(record.get("messages"), "messages", ctx), "messages")
        return PromptSpec(messages=prompt, metadata={**extras(record, {"messages"}, ctx), "completion": answer})


@register
class Bedrock(_PromptWithAnswer):
    name = "bedrock"
    help = 'Bedrock fine-tuning {"prompt", "completion"}: prompts, the completion kept as metadata'

    def prompt(self, record: dict, ctx: Context) -> PromptSpec:
        return PromptSpec(text=text(record.get("prompt"), "prompt", ctx),
                          metadata={**extras(record, {"prompt", "completion"}, ctx),
                                    "completion": text(record.get("completion"), "completion", ctx)})


@register
class BedrockConversation(_PromptWithAnswer):
    name = "bedrock-conversation"
    help = "Bedrock conversation JSONL: prompts, the final assistant turn kept as metadata"

    def prompt(self, record: dict, ctx: Context) -> PromptSpec:
        system = record.get("system") or []
        if not isinstance(system, list):
            raise RecordError("system", 'expected a list of {"text"} blocks')
        turns = record.get("messages")
        if not isinstance(turns, list):
            raise RecordError("messages", "expected a list of messages")
        flat = [{"role": "system", "content": b.get("text") if isinstance(b, dict) else None} for b in system]
        for i, m in enumerate(turns):
            if not isinstance(m, dict) or not isinstance(m.get("content"), list):
                raise RecordError(f"messages[{i}]", 'expected {"role", "content": [{"text"}]}')
            texts = [b.get("text") for b in m["content"] if isinstance(b, dict) and "text" in b]
            if len(texts) != 1:
                raise RecordError(f"messages[{i}].content", "expected exactly one text block")
            flat.append({"role": m.get("role"), "content": texts[0]})
        prompt, answer = _split_last_answer(messages(flat, "messages", ctx), "messages")
        known = {"schemaVersion", "system", "messages"}
        return PromptSpec(messages=prompt, metadata={**extras(record, known, ctx), "completion": answer})
