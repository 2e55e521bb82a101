"""Exports written by several processes (``services.export_parts``): forked children over item ranges, each
with its own connection to the test database (so ``transaction=True``: they see only committed rows)."""
from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from labeling import selectors_governance as gov
from labeling.exporters import record_exporter_get
from labeling.exporters.trl_records import TrlPreferenceRecords
from labeling.pii import PiiReport
from labeling.services.export_parts import export_workers, export_write
from labeling.services.snapshots import snapshot_create
from tests.factories import CampaignFactory, ItemFactory, PromptFactory, member
from tests.labeling.test_snapshots import judge

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def snapshot():
    """Twelve items judged two or three times; every third prompt carries an e-mail address, which the
    snapshot's PII policy masks."""
    campaign = CampaignFactory()
    people = [member(campaign) for _ in range(3)]
    for i in range(12):
        prompt = PromptFactory(campaign=campaign, text=f"Question {i}" + (f" from ann{i}@example.com" if i % 3 == 0 else ""))
        item = ItemFactory(campaign=campaign, prompt=prompt)
        for person in people[: 2 + i % 2]:
            judge(item, person, winner=i % 2, strength=1 + i % 3)
    return snapshot_create(campaign=campaign, created_by=None, pii_policy={"kinds": {"email": "mask"}, "names": False})


def _write(snapshot, fmt: str, workers: int, tmp_path, make_exporter=None) -> tuple[bytes, int, dict]:
    report, out = PiiReport(), io.BytesIO()
    rows = export_write(snapshot=snapshot, split=None, make_exporter=make_exporter or (lambda: record_exporter_get(fmt)),
                        fh=out, workers=workers, report=report, parts_at=tmp_path / f"{fmt}-{workers}")
    return out.getvalue(), rows, report.as_dict()


@pytest.mark.parametrize("fmt", ["trl-preference", "canonical", "openai-dpo"])
def test_json_lines_from_three_processes_are_the_bytes_of_one(snapshot, fmt, tmp_path):
    one, rows_one, report_one = _write(snapshot, fmt, 1, tmp_path)
    three, rows_three, report_three = _write(snapshot, fmt, 3, tmp_path)
    assert rows_one > 0 and (three, rows_three) == (one, rows_one)
    assert report_three["counts"] == report_one["counts"] and report_one["counts"]["email:mask"] >= 4
    assert b"@example.com" not in three
    assert not list(tmp_path.iterdir()), "the part files are removed"


def test_parquet_parts_join_into_the_same_rows(snapshot, tmp_path):
    one, rows_one, _ = _write(snapshot, "parquet", 1, tmp_path)
    three, rows_three, _ = _write(snapshot, "parquet", 3, tmp_path)
    assert rows_three == rows_one == 30
    assert pq.read_table(io.BytesIO(three)).to_pylist() == pq.read_table(io.BytesIO(one)).to_pylist()


def test_item_bounds_cut_between_items_into_parts_of_about_equal_size(snapshot):
    cuts = gov.snapshot_item_bounds(snapshot=snapshot, split=None, parts=3)
    assert len(cuts) == 2 and cuts == sorted(cuts)
    ranges = list(zip([None, *cuts], [*cuts, None], strict=True))
    parts = [[r["item"]["id"] for r in gov.snapshot_raw_records(snapshot=snapshot, key="k", items=items)]
             for items in ranges]
    assert sum(len(p) for p in parts) == snapshot.records_count, [len(p) for p in parts]
    assert all(7 <= len(p) <= 13 for p in parts), [len(p) for p in parts]
    assert not set(parts[0]) & set(parts[1]) and not set(parts[1]) & set(parts[2])  # an item stays whole


def test_small_exports_and_formats_that_cannot_be_joined_use_one_process(settings):
    settings.EXPORT_WORKERS, settings.EXPORT_PARALLEL_MIN = 4, 1000
    assert export_workers(records=999, exporter=record_exporter_get("canonical")) == 1
    assert export_workers(records=1000, exporter=record_exporter_get("canonical")) == 4
    assert export_workers(records=1000, exporter=record_exporter_get("parquet")) == 4
    for fmt in ("label-studio", "hf-datasets"):  # one JSON array; a folder written by datasets
        assert export_workers(records=10**6, exporter=record_exporter_get(fmt)) == 1


class _FailsOnItem(TrlPreferenceRecords):
    """A real exporter that breaks on one item's records, as a bad value in the data would."""

    item_id = 0

    def rows(self, record):
        if record["item"]["id"] == self.item_id:
            raise ValueError(f"cannot write item {self.item_id}")
        yield from super().rows(record)


def test_a_failing_part_fails_the_export_and_leaves_no_part_files(snapshot, tmp_path):
    _FailsOnItem.item_id = max(r["item"]["id"] for r in gov.snapshot_raw_records(snapshot=snapshot, key="k"))
    with pytest.raises(RuntimeError, match=r"1 of 3 export parts failed: part 2: ValueError: cannot write item \d+"):
        _write(snapshot, "trl-preference", 3, tmp_path, make_exporter=lambda: _FailsOnItem())
    assert not list(tmp_path.iterdir())
