"""TRL from canonical records. ``trl-preference``: the same rows as the judgment-based exporter of that name
(``trl_preference``): ``prompt`` / ``chosen`` / ``rejected`` as strings (``style=standard``) or message lists
(``style=conversational``), ``margin`` from the strength of preference (``margin=strength``), tie and
both-bad pairs kept with a ``label`` when asked. ``trl-kto``: TRL's unpaired format, ``prompt`` /
``completion`` / ``label`` (true for the winner, false for the loser of each decisive pair), the two rows of a
pair adjacent. KTO files have no pairing to read back, so this one is export-only."""
from __future__ import annotations

from collections.abc import Iterator

from .records import (
    RecordExporter,
    answer_text,
    decisive_pair,
    ordered_pairs,
    prompt_messages,
    prompt_text,
    register,
)
from .trl_preference import MARGIN_BY_STRENGTH


class _Styled(RecordExporter):
    def _prompt(self, record: dict):
        return prompt_text(record["prompt"]) if self.opts["style"] == "standard" else prompt_messages(record["prompt"])

    def _answer(self, record: dict, index: int):
        text = record["responses"][index]["text"]
        if self.opts["style"] == "standard":
            return text
        return [{"role": "assistant", "content": answer_text(record["prompt"], text)}]


@register
class TrlPreferenceRecords(_Styled):
    name = "trl-preference"
    help = "TRL preference pairs (DPO, reward modelling): prompt, chosen, rejected[, margin]"
    options = {"style": ("standard", "conversational"), "ties": ("drop", "keep"), "both_bad": ("drop", "keep"),
               "margin": ("none", "strength")}

    def rows(self, record: dict) -> Iterator[dict]:
        keep = {"preference": True, "tie": self.opts["ties"] == "keep", "both_bad": self.opts["both_bad"] == "keep"}
        marked = not (keep["tie"] is keep["both_bad"] is False)
        for better, worse, label in ordered_pairs(record):
            if not keep[label]:
                continue
            row = {"prompt": self._prompt(record), "chosen": self._answer(record, better),
                   "rejected": self._answer(record, worse)}
            if self.opts["margin"] == "strength":
                strength = record["judgment"]["strength"] if label == "preference" else None
                row["margin"] = MARGIN_BY_STRENGTH.get(strength, 0.0)
            if marked:
                row["label"] = label
            yield row


@register
class TrlKto(_Styled):
    name = "trl-kto"
    help = "TRL unpaired preference (KTO): prompt, completion, label (export only)"
    options = {"style": ("standard", "conversational")}

    def rows(self, record: dict) -> Iterator[dict]:
        pair = decisive_pair(record)
        if pair is None:
            return
        for index, label in zip(pair, (True, False), strict=True):
            yield {"prompt": self._prompt(record), "completion": self._answer(record, index), "label": label}
