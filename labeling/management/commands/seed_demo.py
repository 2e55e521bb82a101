"""Seed the demo: four users with a known password and one campaign of pairwise and ranking items.
Idempotent: running it again changes nothing. For local demos only: never run it on a shared server."""
from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from ...models import Campaign, Role
from ...services.campaigns import campaign_create, membership_add, round_current
from ...services.items import ItemSpec, PromptSpec, ResponseSpec, items_create
from ._base import LoopwiseCommand

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_PASSWORD = "loopwise-demo"
CAMPAIGN_NAME = "Demo: helpful and harmless"
USERS = [("admin", True), ("annotator1", False), ("annotator2", False), ("researcher", False)]


class Command(LoopwiseCommand):
    help = "Create the demo users and campaign (idempotent)."

    @transaction.atomic
    def handle(self, *args, **opts):
        User = get_user_model()
        users = {}
        for name, staff in USERS:
            user, created = User.objects.get_or_create(username=name, defaults={"is_staff": staff, "is_superuser": staff})
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            users[name] = user
        if Campaign.objects.filter(name=CAMPAIGN_NAME).exists():
            self.stdout.write("demo already seeded")
            return
        campaign = campaign_create(
            created_by=users["admin"],
            name=CAMPAIGN_NAME,
            guidelines=(DEMO_DIR / "guidelines.md").read_text(encoding="utf-8"),
            overlap=2,
            ranking_enabled=True,
        )
        for name, role in [("annotator1", Role.ANNOTATOR), ("annotator2", Role.ANNOTATOR), ("admin", Role.ANNOTATOR), ("researcher", Role.RESEARCHER)]:
            membership_add(campaign=campaign, user=users[name], role=role)
        specs = []
        with (DEMO_DIR / "items.jsonl").open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                record = json.loads(line)
                specs.append(
                    ItemSpec(
                        prompt=PromptSpec(text=record["prompt"], metadata={"source": "demo"}),
                        responses=[ResponseSpec(text=t, model_name="demo") for t in record["responses"]],
                        line=line_no,
                    )
                )
        report = items_create(campaign=campaign, round=round_current(campaign=campaign), specs=specs)
        self.stdout.write(f"seeded campaign {campaign.pk} with {report.items_created} items")
