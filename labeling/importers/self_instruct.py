"""``self-instruct``: the seed-task file of Self-Instruct (yizhongw/self-instruct), imported as prompts.

``{"id", "name", "instruction", "instances": [{"input", "output"}], "is_classification"}`` gives one prompt per
instance: the instruction, followed by a blank line and the instance's input when the input is not empty
(the same text Alpaca-style instruction files use, so the two import to the same prompts and dedupe).
The task's ``id`` is the external id (``id#2``, ``id#3``... for a task's later instances); ``name``,
``is_classification`` and the instance's ``output`` go into metadata as ``task``, ``is_classification`` and
``response`` (the reference answer, under the key ``prompts-jsonl`` uses for it)."""
from __future__ import annotations

from typing import Any

from ..services.items import PromptSpec
from .base import Context, Format, RecordError, external_id, need_object, register, storable_json, text


@register
class SelfInstruct(Format):
    name = "self-instruct"
    detect_order = 40
    produces = "prompts"
    help = 'Self-Instruct seed tasks: {"instruction", "instances": [{"input", "output"}]}, one prompt per instance'

    @classmethod
    def detect(cls, record: Any) -> bool:
        return isinstance(record, dict) and "instruction" in record and "instances" in record

    def parse(self, record: Any, ctx: Context) -> list[PromptSpec]:
        record = need_object(record)
        instruction = text(record.get("instruction"), "instruction", ctx)
        instances = record.get("instances")
        if not isinstance(instances, list) or not instances:
            raise RecordError("instances", "expected a non-empty list of {input, output} objects")
        base_id = external_id(record.get("id"), "id")
        specs = []
        for i, instance in enumerate(instances):
            at = f"instances[{i}]"
            if not isinstance(instance, dict):
                raise RecordError(at, "expected an object with input and output")
            given = instance.get("input", "")
            if not isinstance(given, str):
                raise RecordError(f"{at}.input", "expected a string")
            body = f"{instruction}\n\n{given}" if given.strip() else instruction
            meta = {"task": record.get("name", ""), "is_classification": record.get("is_classification", False)}
            if "output" in instance:
                meta["response"] = instance["output"]
            suffix = f"#{i + 1}" if i else ""
            specs.append(
                PromptSpec(
                    text=text(body, f"{at}.input", ctx),
                    metadata=storable_json(meta, at, ctx),
                    external_id=external_id(f"{base_id}{suffix}" if base_id else "", "id"),
                )
            )
        return specs
