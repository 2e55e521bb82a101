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
    decisive_pair,
    is_hh_transcript,
    ordered_pairs,
    prompt_messages,
    prompt_text,
    register,
)
from .trl_preference import MARGIN_BY_STRENGTH


class _Styled(RecordExporter):
    """Rows in one of two styles: ``standard`` (strings) or ``conversational`` (message lists). The prompt as
    written is worked out once per item: records of one item share their ``prompt`` part, and so do the
    rows written from them (rows are read-only, as records are)."""

    def __init__(self, raw_options=None):
        super().__init__(raw_options)
        self.standard = self.opts["style"] == "standard"
        self.styled: tuple = (None, None, False)  # (prompt part, the prompt as written, strip answers' space)

    def _prompt(self, record: dict):
        """The record's prompt as written, and whether its answers lose their leading space (an HH
        transcript's do, as in ``answer_text``)."""
        part = record["prompt"]
        if self.styled[0] is not part:
            if self.standard:
                self.styled = (part, prompt_text(part), False)
            else:
                self.styled = (part, prompt_messages(part), is_hh_transcript(part))
        return self.styled[1], self.styled[2]

    def _answer(self, text: str, strip: bool):
        if self.standard:
            return text
        return [{"role": "assistant", "content": text.removeprefix(" ") if strip else text}]


@register
class TrlPreferenceRecords(_Styled):
    name = "trl-preference"
    help = "TRL preference pairs (DPO, reward modelling): prompt, chosen, rejected[, margin]"
    options = {"style": ("standard", "conversational"), "ties": ("drop", "keep"), "both_bad": ("drop", "keep"),
               "margin": ("none", "strength")}

    def __init__(self, raw_options=None):
        super().__init__(raw_options)
        self.kept = {"preference"} | {label for label, option in (("tie", "ties"), ("both_bad", "both_bad"))
                                      if self.opts[option] == "keep"}
        self.marked = len(self.kept) > 1
        self.margin = self.opts["margin"] == "strength"

    def rows(self, record: dict) -> Iterator[dict]:
        responses = record["responses"]
        prompt = strip = None
        for better, worse, label in ordered_pairs(record):
            if label not in self.kept:
                continue
            if prompt is None:
                prompt, strip = self._prompt(record)
            row = {"prompt": prompt, "chosen": self._answer(responses[better]["text"], strip),
                   "rejected": self._answer(responses[worse]["text"], strip)}
            if self.margin:
                strength = record["judgment"]["strength"] if label == "preference" else None
                row["margin"] = MARGIN_BY_STRENGTH.get(strength, 0.0)
            if self.marked:
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
        prompt, strip = self._prompt(record)
        for index, label in zip(pair, (True, False), strict=True):
            yield {"prompt": prompt, "completion": self._answer(record["responses"][index]["text"], strip),
                   "label": label}
