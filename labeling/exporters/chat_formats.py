"""Fine-tuning files of hosted trainers, written from canonical records (``importers.chat_formats`` reads
them back):

- ``openai-sft``: OpenAI chat fine-tuning, ``{"messages": [...prompt, {"role": "assistant", "content":
  winner}]}``, one row per decisive pair (the preferred response).
- ``openai-dpo``: OpenAI preference fine-tuning, ``{"input": {"messages": [...]}, "preferred_output":
  [{"role": "assistant", "content"}], "non_preferred_output": [...]}``.
- ``bedrock``: Amazon Bedrock fine-tuning, ``{"prompt", "completion"}`` (the preferred response).
- ``bedrock-pretraining``: Bedrock continued pre-training, ``{"input": prompt + preferred response}`` (no
  structure left to read back: export only).
- ``bedrock-conversation``: Bedrock's conversation schema, ``{"schemaVersion": "bedrock-conversation-2024",
  "system": [{"text"}], "messages": [{"role", "content": [{"text"}]}]}`` ending with the preferred response.
"""
from __future__ import annotations

from collections.abc import Iterator

from .hh_records import joined, transcript
from .records import RecordExporter, answer_text, decisive_pair, prompt_messages, prompt_text, register


def _winner(record: dict) -> tuple[str, str] | None:
    pair = decisive_pair(record)
    if pair is None:
        return None
    texts = [r["text"] for r in record["responses"]]
    return texts[pair[0]], texts[pair[1]]


@register
class OpenAiSft(RecordExporter):
    name = "openai-sft"
    help = 'OpenAI chat fine-tuning: {"messages": [..., {"role": "assistant", "content": preferred}]}'

    def rows(self, record: dict) -> Iterator[dict]:
        if (pair := _winner(record)) is not None:
            answer = answer_text(record["prompt"], pair[0])
            yield {"messages": [*prompt_messages(record["prompt"]), {"role": "assistant", "content": answer}]}


@register
class OpenAiDpo(RecordExporter):
    name = "openai-dpo"
    help = "OpenAI preference fine-tuning (DPO): input.messages, preferred_output, non_preferred_output"

    def rows(self, record: dict) -> Iterator[dict]:
        if (pair := _winner(record)) is not None:
            prompt = record["prompt"]
            yield {"input": {"messages": prompt_messages(prompt), "tools": [], "parallel_tool_calls": True},
                   "preferred_output": [{"role": "assistant", "content": answer_text(prompt, pair[0])}],
                   "non_preferred_output": [{"role": "assistant", "content": answer_text(prompt, pair[1])}]}


@register
class Bedrock(RecordExporter):
    name = "bedrock"
    help = 'Amazon Bedrock fine-tuning: {"prompt", "completion"} (the preferred response)'

    def rows(self, record: dict) -> Iterator[dict]:
        if (pair := _winner(record)) is not None:
            yield {"prompt": prompt_text(record["prompt"]), "completion": pair[0]}


@register
class BedrockPretraining(RecordExporter):
    name = "bedrock-pretraining"
    help = 'Bedrock continued pre-training: {"input": transcript + preferred response} (export only)'

    def rows(self, record: dict) -> Iterator[dict]:
        if (pair := _winner(record)) is not None:
            yield {"input": joined(transcript(record["prompt"]), pair[0])}


@register
class BedrockConversation(RecordExporter):
    name = "bedrock-conversation"
    help = "Bedrock conversation JSONL (bedrock-conversation-2024) ending with the preferred response"

    def rows(self, record: dict) -> Iterator[dict]:
        if (pair := _winner(record)) is None:
            return
        messages = prompt_messages(record["prompt"])
        system = [{"text": m["content"]} for m in messages if m["role"] == "system"]
        turns = [{"role": m["role"], "content": [{"text": m["content"]}]} for m in messages if m["role"] != "system"]
        turns.append({"role": "assistant", "content": [{"text": answer_text(record["prompt"], pair[0])}]})
        row = {"schemaVersion": "bedrock-conversation-2024", "messages": turns}
        if system:
            row["system"] = system
        yield row
