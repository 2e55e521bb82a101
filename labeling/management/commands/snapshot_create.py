"""``manage.py snapshot_create CAMPAIGN``: freeze a campaign's judgments as a snapshot; prints its id, hash and
counts (the manifest as JSON with --json). Bad input exits 2."""
from __future__ import annotations

import json

from django.core.management.base import CommandError

from ...models import Round
from ...services.snapshots import snapshot_create
from ._base import LoopwiseCommand, campaign_by_ref


class Command(LoopwiseCommand):
    help = "Create a snapshot (immutable, content-hashed, split per prompt) of a campaign's judgments."

    def add_arguments(self, parser):
        parser.add_argument("campaign", help="campaign id or exact name")
        parser.add_argument("--round", type=int, action="append", default=[], help="round number (repeatable)")
        parser.add_argument("--seed", type=int, default=0, help="split seed")
        parser.add_argument("--ratios", default="0.8,0.1,0.1", help="train,validation,test")
        parser.add_argument("--aggregation", default="none", help="none or majority")
        parser.add_argument("--filters", default="{}", help="JSON object of filters")
        parser.add_argument("--pii-policy", default=None, help="JSON policy; default: the campaign's own")
        parser.add_argument("--json", action="store_true", help="print the whole manifest")

    def handle(self, *args, **opts):
        campaign = campaign_by_ref(opts["campaign"])
        try:
            ratios = [float(x) for x in opts["ratios"].split(",")]
            filters = json.loads(opts["filters"])
            policy = json.loads(opts["pii_policy"]) if opts["pii_policy"] else None
        except ValueError as exc:
            raise CommandError(f"bad --ratios, --filters or --pii-policy: {exc}", returncode=2) from exc
        round_ids = []
        for number in opts["round"]:
            found = Round.objects.filter(campaign=campaign, number=number).values_list("pk", flat=True).first()
            if found is None:
                raise CommandError(f"campaign {campaign.pk} has no round {number}", returncode=2)
            round_ids.append(found)
        snapshot = snapshot_create(campaign=campaign, created_by=None, round_ids=round_ids or None, filters=filters,
                                   aggregation=opts["aggregation"], split_seed=opts["seed"], split_ratios=ratios,
                                   pii_policy=policy)
        if opts["json"]:
            self.stdout.write(json.dumps({"id": snapshot.pk, **snapshot.manifest}, indent=2, ensure_ascii=False))
            return
        counts = snapshot.manifest["counts"]
        self.stdout.write(f"snapshot {snapshot.pk} sha256 {snapshot.content_hash}: {counts['judgments']} judgments, "
                          f"{counts['prompts']} prompts, prompts by split {counts['prompts_by_split']}")
