"""Data migrations: what existing installations have is carried over."""
from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from labeling.models import Judgment, SnapshotMember
from labeling.services.snapshots import snapshot_create
from tests.factories import CampaignFactory, ItemFactory, member
from tests.labeling.test_snapshots import judge

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(target: str | None) -> None:
    """Migrate labeling to ``target``; None: every app to its latest migration (where the tests run)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("labeling", target)] if target else executor.loader.graph.leaf_nodes())


def test_members_written_before_0007_get_their_judgments_items():
    campaign = CampaignFactory()
    people = [member(campaign) for _ in range(2)]
    items = [ItemFactory(campaign=campaign) for _ in range(3)]
    for item in items:
        for person in people:
            judge(item, person)
    snapshot = snapshot_create(campaign=campaign, created_by=None)
    gone = Judgment.objects.filter(item=items[2]).first()
    _migrate("0006_exportjob_snapshot_in_worker")
    try:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM labeling_judgment WHERE id = %s", [gone.pk])
    finally:
        _migrate(None)
    found = dict(SnapshotMember.objects.filter(snapshot=snapshot).values_list("judgment_id", "item_id"))
    expected = dict(Judgment.objects.filter(campaign=campaign).values_list("id", "item_id"))
    assert found == {**expected, gone.pk: None}  # a judgment deleted before the migration leaves no item
