"""``manage.py simulate_annotate CAMPAIGN --rule shorter|contains [--word W] [--reward-model DIR]
[--noise 0.1] [--limit N] [--username sim-annotator]``: judge a campaign's open items with a simulated annotator
(pre-labelling, demos, load tests). It judges through the same queue service as a person, as a user holding the
annotator role; its judgments are marked ``source=simulated``."""
from __future__ import annotations

from django.core.management.base import CommandError

from labeling.management.commands._base import LoopwiseCommand, campaign_by_ref

from ...simulate import SimulatedAnnotator


class Command(LoopwiseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("campaign", help="campaign id or name")
        parser.add_argument("--rule", choices=["shorter", "contains"])
        parser.add_argument("--word", help="the word the contains rule prefers")
        parser.add_argument("--reward-model", help="a reward model folder to judge with instead of a rule")
        parser.add_argument("--noise", type=float, default=0.0, help="probability of a random answer")
        parser.add_argument("--limit", type=int, help="stop after this many judgments")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--username", default="sim-annotator")

    def handle(self, *args, campaign, rule=None, word=None, reward_model=None, noise=0.0, limit=None, seed=0,
               username="sim-annotator", **options):
        if bool(rule) == bool(reward_model):
            raise CommandError("give exactly one of --rule or --reward-model", returncode=2)
        spec = {"reward_model": reward_model} if reward_model else {"rule": rule, **({"word": word} if word else {})}
        try:
            sim = SimulatedAnnotator.from_spec(campaign=campaign_by_ref(campaign), spec=spec, username=username,
                                               noise=noise, seed=seed)
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        done = sim.run(limit=limit)
        self.stdout.write(f"{done} judgments by {username} ({sim.counts['ties']} ties, {sim.counts['noisy']} noisy)")
