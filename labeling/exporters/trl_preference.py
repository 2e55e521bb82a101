"""``trl-preference``: judgments as TRL preference records, one JSON object per line.

Pairs. A pairwise judgment with a winner gives one record, ``chosen`` the winner. A ranking judgment (tie groups
of responses, best first) is expanded into every pair across groups: each response of a better group against
each response of every worse group, best group first, in the ranking's order; two responses in one tie group
make a tie pair. A pairwise tie is one tie pair; a both-bad judgment makes each pair of its responses a
both-bad pair. Each judgment counts on its own, so an item judged by k annotators gives up to k records.

Options:
- ``style=standard`` (default): ``prompt``, ``chosen``, ``rejected`` are strings. A text prompt is written as
  it is; a chat prompt is rendered with ``chat.CHAT_TEMPLATE``: each message as ``"\\n\\n<Role>: <content>"`` (user
  -> Human, assistant -> Assistant, system -> System, tool -> Tool), then ``"\\n\\nAssistant:"``, the shape
  HH-RLHF uses. Responses are written verbatim.
- ``style=conversational``: ``prompt`` is a list of ``{"role", "content"}`` messages and ``chosen`` /
  ``rejected`` are ``[{"role": "assistant", "content": ...}]``. A chat prompt is written as stored. A text
  prompt that is an HH transcript (starts with ``"\\n\\nHuman: "``, ends with ``"\\n\\nAssistant:"``) is split
  back into its turns (the one space after each ``Human:`` / ``Assistant:`` dropped, and the one leading space
  of each response, which belongs to that marker); any other text prompt is one user message.
- ``ties`` / ``both_bad`` = ``drop`` (default) | ``keep``. When either is kept, every record carries
  ``"label"``: ``"preference"``, ``"tie"`` or ``"both_bad"``, so a tie can never pass for a preference; in a
  tie or both-bad record ``chosen`` / ``rejected`` are just the two responses in the item's order.
- ``margin`` = ``none`` (default) | ``strength``: adds TRL's reward-model ``margin`` to every record:
  ``MARGIN_BY_STRENGTH`` for a winner's strength 1 / 2 / 3 (slight / clear / strong preference), 0.0 where
  there is no strength (none given, ranking pairs, ties, both-bad)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations

from ..models import Judgment, Prompt
from ..selectors_records import ItemContext
from .base import Exporter, Options, choice, register
from .chat import hh_turns, render_chat

MARGIN_BY_STRENGTH = {1: 1.0, 2: 2.0, 3: 3.0}


@dataclass(frozen=True)
class TrlOptions(Options):
    style: str = choice("standard", "conversational", help="strings, or chat message lists")
    ties: str = choice("drop", "keep", help="keep tie pairs (marked label=tie)")
    both_bad: str = choice("drop", "keep", help="keep both-bad pairs (marked label=both_bad)")
    margin: str = choice("none", "strength", help="add a numeric margin from the strength of preference")


def pairs(*, both_bad: bool, ranking: list[list[int]], responses: list[tuple[int, str]]
          ) -> Iterator[tuple[str, str, str]]:
    """(better, worse, label) response texts for each pair a judgment orders (``responses`` as (id, text) in
    the item's order, ``ranking`` as tie groups of ids); label is preference, tie or both_bad."""
    if both_bad:
        for (_, a), (_, b) in combinations(responses, 2):
            yield a, b, "both_bad"
        return
    by_id = dict(responses)
    groups = [[by_id[i] for i in group if i in by_id] for group in ranking]
    for at, group in enumerate(groups):
        for a, b in combinations(group, 2):
            yield a, b, "tie"
        for worse_group in groups[at + 1 :]:
            for a in group:
                for b in worse_group:
                    yield a, b, "preference"


@register
class TrlPreference(Exporter):
    name = "trl-preference"
    options_class = TrlOptions
    help = "TRL preference pairs (DPO, reward modelling): prompt, chosen, rejected"

    def _prompt_and_answer(self, kind: str, text: str, messages: list[dict]):
        """The prompt in the chosen style and how to write a response (its text) beside it."""
        if self.options.style == "standard":
            return (render_chat(messages) if kind == Prompt.Kind.CHAT else text), _verbatim
        if kind != Prompt.Kind.CHAT:
            turns = hh_turns(text)
            if turns is not None:
                return turns, _assistant_stripped
            messages = [{"role": "user", "content": text}]
        return messages, _assistant

    def records(self, judgments: Iterable[Judgment]) -> Iterator[dict]:
        for judgment in judgments:
            prompt = judgment.item.prompt
            responses = [(link.response.pk, link.response.text) for link in judgment.item.item_responses.all()]
            yield from self._records(prompt.kind, prompt.text, prompt.messages, responses, judgment.both_bad,
                                     judgment.ranking, judgment.strength)

    def row_records(self, rows: Iterable[tuple[dict, ItemContext]]) -> Iterator[dict]:
        for row, context in rows:
            prompt = context.prompt
            responses = [(r["id"], r["text"]) for r in context.responses]
            yield from self._records(prompt["kind"], prompt["text"], prompt["messages"], responses, row["both_bad"],
                                     row["ranking"], row["strength"])

    def _records(self, kind, text, messages, responses, both_bad, ranking, strength) -> Iterator[dict]:
        """The records of one judgment, from plain values (model instances or ``judgment_rows`` rows)."""
        options = self.options
        keep = {"preference": True, "tie": options.ties == "keep", "both_bad": options.both_bad == "keep"}
        marked = options.ties == "keep" or options.both_bad == "keep"
        prompt = answer = None
        for better, worse, label in pairs(both_bad=both_bad, ranking=ranking, responses=responses):
            if not keep[label]:
                continue
            if prompt is None:
                prompt, answer = self._prompt_and_answer(kind, text, messages)
            record = {"prompt": prompt, "chosen": answer(better), "rejected": answer(worse)}
            if options.margin == "strength":
                record["margin"] = MARGIN_BY_STRENGTH.get(strength if label == "preference" else None, 0.0)
            if marked:
                record["label"] = label
            yield record


def _verbatim(text: str):
    return text


def _assistant(text: str):
    return [{"role": "assistant", "content": text}]


def _assistant_stripped(text: str):
    # An HH transcript's response starts with the space that belongs to its "Assistant:" marker.
    return [{"role": "assistant", "content": text.removeprefix(" ")}]
