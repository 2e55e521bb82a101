"""Simulated annotators: code that judges items through the same queue service as a person.

A judge scores each response of an item; the annotator prefers the highest score (equal scores: a tie where
the campaign allows ties, else a coin flip), and with probability ``noise`` answers at random instead. Judges
are built from a JSON spec (see ``rlhf.judges``), so a loop configuration can name one.

The annotator is a real user account holding the annotator role; it takes slots with
``labeling.services.queue.assignment_next`` and submits with ``judgment_record`` exactly like the web page
does, then marks its judgment ``source=simulated`` with its judge's name.
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction

from labeling.models import Campaign, ItemResponse, Judgment, Membership, Prompt, Role
from labeling.services.queue import assignment_next, judgment_record
from labeling.services.validation import JudgmentInput

from .judges import Judge, judge_from_spec, judge_name, reward_model_judge, rule_contains, rule_shorter

__all__ = ["Judge", "SimulatedAnnotator", "judge_from_spec", "judge_name", "reward_model_judge", "rule_contains",
           "rule_shorter", "simulated_user"]

def prompt_text(prompt: Prompt) -> str:
    if prompt.kind == Prompt.Kind.CHAT:
        return "\n".join(m.get("content", "") for m in prompt.messages)
    return prompt.text


def simulated_user(*, campaign: Campaign, username: str):
    """A user account for a simulated annotator (no usable password), holding the annotator role."""
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    Membership.objects.get_or_create(campaign=campaign, user=user, role=Role.ANNOTATOR)
    return user


@dataclass
class SimulatedAnnotator:
    user: object
    campaign: Campaign
    judge: Judge
    name: str = "simulated"
    noise: float = 0.0
    seed: int = 0
    use_ties: bool = True
    counts: dict = field(default_factory=lambda: {"judged": 0, "noisy": 0, "ties": 0})

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError("noise must be in [0, 1]")
        self.rng = random.Random(self.seed)

    @classmethod
    def from_spec(cls, *, campaign: Campaign, spec: dict, username: str = "sim-annotator", noise: float = 0.0,
                  seed: int = 0) -> SimulatedAnnotator:
        return cls(user=simulated_user(campaign=campaign, username=username), campaign=campaign,
                   judge=judge_from_spec(spec), name=judge_name(spec), noise=noise, seed=seed)

    def decide(self, prompt: str, response_ids: list[int], texts: list[str]) -> JudgmentInput:
        scores = self.judge(prompt, texts)
        if self.noise and self.rng.random() < self.noise:
            self.counts["noisy"] += 1
            return JudgmentInput(winner=self.rng.choice(response_ids), client_id=uuid.uuid4())
        if len(response_ids) > 2:  # ranking: tie groups by score, best first
            order = sorted(set(scores), reverse=True)
            groups = [[rid for rid, s in zip(response_ids, scores, strict=True) if s == level] for level in order]
            return JudgmentInput(ranking=groups, client_id=uuid.uuid4())
        if scores[0] == scores[1]:
            if self.use_ties and self.campaign.allow_tie:
                self.counts["ties"] += 1
                return JudgmentInput(tie=True, client_id=uuid.uuid4())
            return JudgmentInput(winner=self.rng.choice(response_ids), client_id=uuid.uuid4())
        return JudgmentInput(winner=response_ids[0 if scores[0] > scores[1] else 1], client_id=uuid.uuid4())

    def judge_one(self) -> Judgment | None:
        """Take the next slot and judge it; None when the queue has nothing left for this annotator."""
        with transaction.atomic():
            slot = assignment_next(user=self.user, campaign=self.campaign)
            if slot is None:
                return None
            links = list(ItemResponse.objects.filter(item_id=slot.item_id).select_related("response", "item__prompt"))
            by_id = {link.response_id: link.response for link in links}
            order = [rid for rid in slot.shown_order if rid in by_id] or list(by_id)
            data = self.decide(prompt_text(links[0].item.prompt), order, [by_id[r].text for r in order])
            result = judgment_record(user=self.user, assignment_id=slot.pk, data=data)
            Judgment.objects.filter(pk=result.judgment.pk).update(
                source=Judgment.Source.SIMULATED, source_name=self.name[:200]
            )
        self.counts["judged"] += 1
        return result.judgment

    def run(self, limit: int | None = None) -> int:
        """Judge until the queue is empty (or ``limit`` judgments); returns how many were made."""
        done = 0
        while limit is None or done < limit:
            if self.judge_one() is None:
                break
            done += 1
        return done
