from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from ...models import Campaign
from ...services.campaigns import campaign_create, membership_add
from ._base import LoopwiseCommand


class Command(LoopwiseCommand):
    help = "Create a campaign (with round 1 open). Prints its id."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--guidelines-file", type=Path, help="Markdown file with the guidelines")
        parser.add_argument("--overlap", type=int, default=1, help="judgments per item (k)")
        parser.add_argument("--ranking", action="store_true", help="turn on K-way ranking")
        parser.add_argument("--no-pairwise", action="store_true", help="turn off pairwise judgments")
        parser.add_argument("--no-tie", action="store_true")
        parser.add_argument("--no-both-bad", action="store_true")
        parser.add_argument("--no-strength", action="store_true")
        parser.add_argument("--rationale", choices=Campaign.Rationale.values, default=Campaign.Rationale.OPTIONAL)
        parser.add_argument("--admin", action="append", default=[], metavar="USERNAME")
        parser.add_argument("--annotator", action="append", default=[], metavar="USERNAME")
        parser.add_argument("--researcher", action="append", default=[], metavar="USERNAME")

    def handle(self, *args, **opts):
        guidelines = ""
        if opts["guidelines_file"]:
            if not opts["guidelines_file"].is_file():
                raise CommandError(f"guidelines file {opts['guidelines_file']} not found", returncode=2)
            guidelines = opts["guidelines_file"].read_text(encoding="utf-8")
        users = get_user_model().objects
        members = []
        for role in ("admin", "annotator", "researcher"):
            for name in opts[role]:
                user = users.filter(username=name).first()
                if user is None:
                    raise CommandError(f"--{role} {name}: no such user (create it with `manage.py user_create`)", returncode=2)
                members.append((user, role))
        campaign = campaign_create(
            created_by=None,
            name=opts["name"],
            guidelines=guidelines,
            overlap=opts["overlap"],
            ranking_enabled=opts["ranking"],
            pairwise_enabled=not opts["no_pairwise"],
            allow_tie=not opts["no_tie"],
            allow_both_bad=not opts["no_both_bad"],
            strength_enabled=not opts["no_strength"],
            rationale=opts["rationale"],
        )
        for user, role in members:
            membership_add(campaign=campaign, user=user, role=role)
        self.stdout.write(str(campaign.pk))
