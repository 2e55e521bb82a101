"""Snapshots: content hash, prompt-level splits, records, manifest, API."""
from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from labeling.errors import ValidationError
from labeling.importers import import_file
from labeling.models import AuditEvent, Judgment, Prompt, Role, SnapshotMember
from labeling.selectors_governance import snapshot_records
from labeling.services.snapshots import _CANONICAL_JSON, RecordLines, _compact, _line, snapshot_create
from tests.conftest import client_for
from tests.factories import CampaignFactory, ItemFactory, UserFactory, member

pytestmark = pytest.mark.django_db


def judge(item, annotator, winner=0, **kw):
    responses = [link.response for link in item.item_responses.order_by("position")]
    shown = kw.pop("shown", [r.pk for r in responses])
    ranking = [[responses[winner].pk], [responses[1 - winner].pk]]
    return Judgment.objects.create(campaign=item.campaign, round=item.round, item=item, annotator=annotator,
                                   kind="pairwise", winner=responses[winner], ranking=ranking, shown_order=shown, **kw)


@pytest.fixture
def judged():
    campaign = CampaignFactory()
    people = [member(campaign) for _ in range(2)]
    items = [ItemFactory(campaign=campaign) for _ in range(6)]
    for i, item in enumerate(items):
        for person in people:
            judge(item, person, winner=i % 2, strength=2, rationale=f"because {i}", time_spent_ms=1000 + i)
    return campaign, people, items


def test_same_inputs_give_the_same_hash_and_snapshot(judged):
    campaign, people, _ = judged
    first = snapshot_create(campaign=campaign, created_by=people[0])
    again = snapshot_create(campaign=campaign, created_by=people[1])
    assert len(first.content_hash) == 64
    assert again.pk == first.pk and again.content_hash == first.content_hash
    assert first.records_count == 12
    assert AuditEvent.objects.filter(action="snapshot.created", object_id=str(first.pk)).count() == 1


def test_a_new_judgment_or_other_inputs_give_a_new_hash(judged):
    campaign, people, items = judged
    first = snapshot_create(campaign=campaign, created_by=None)
    reseeded = snapshot_create(campaign=campaign, created_by=None, split_seed=7)
    assert reseeded.content_hash != first.content_hash
    judge(items[0], member(campaign), winner=1)
    newer = snapshot_create(campaign=campaign, created_by=None)
    assert newer.content_hash not in {first.content_hash, reseeded.content_hash}
    assert newer.records_count == 13


def test_records_carry_prompt_responses_judgment_split_and_lineage(judged):
    campaign, people, items = judged
    snapshot = snapshot_create(campaign=campaign, created_by=people[0])
    records = list(snapshot_records(snapshot=snapshot))
    assert len(records) == 12
    rec = records[0]
    assert rec["prompt"]["text"] == items[0].prompt.text
    assert [r["text"] for r in rec["responses"]] == [link.response.text for link in items[0].item_responses.all()]
    assert rec["judgment"]["winner"] == 0 and rec["judgment"]["strength"] == 2
    assert rec["judgment"]["annotator"].startswith("ann-") and people[0].username not in str(rec)
    assert rec["split"] in {"train", "validation", "test"}
    assert rec["lineage"]["judgment_ids"] and rec["lineage"]["response_ids"]
    only_train = list(snapshot_records(snapshot=snapshot, split="train"))
    assert all(r["split"] == "train" for r in only_train)


def test_members_name_their_items_and_an_item_left_without_judgments_is_passed_over(judged):
    """Exports find the snapshot's items through its members; an item whose judgments were all deleted
    since is still named there, and must neither give records nor shift the others' contexts."""
    campaign, _, items = judged
    snapshot = snapshot_create(campaign=campaign, created_by=None)
    assert set(SnapshotMember.objects.filter(snapshot=snapshot).values_list("judgment_id", "item_id")) == set(
        Judgment.objects.filter(campaign=campaign).values_list("id", "item_id"))
    Judgment.objects.filter(item__in=[items[0], items[3]]).delete()
    records = list(snapshot_records(snapshot=snapshot))
    assert len(records) == 8 and {r["item"]["id"] for r in records} == {i.pk for i in items} - {items[0].pk, items[3].pk}
    texts = {i.pk: i.prompt.text for i in items}
    assert all(r["prompt"]["text"] == texts[r["item"]["id"]] for r in records)


def test_majority_aggregation_gives_one_record_per_item(judged):
    campaign, people, items = judged
    judge(items[0], member(campaign), winner=1)  # 2 votes for A, 1 for B
    snapshot = snapshot_create(campaign=campaign, created_by=None, aggregation="majority")
    records = list(snapshot_records(snapshot=snapshot))
    assert len(records) == 6
    first = next(r for r in records if r["item"]["id"] == items[0].pk)
    assert first["judgment"]["winner"] == 0 and first["judgment"]["votes"] == 3
    assert first["judgment"]["agreement"] == pytest.approx(2 / 3, abs=1e-3)
    assert len(first["lineage"]["judgment_ids"]) == 3


def test_bad_inputs_are_named(judged):
    campaign, _, _ = judged
    for kwargs, field in [({"aggregation": "mean"}, "aggregation"), ({"split_ratios": (0.5, 0.5, 0.5)}, "split_ratios"),
                          ({"filters": {"colour": "red"}}, "filters.colour"), ({"round_ids": [999999]}, "round_ids"),
                          ({"pii_policy": {"default": "shred"}}, "pii_policy.default")]:
        with pytest.raises(ValidationError) as err:
            snapshot_create(campaign=campaign, created_by=None, **kwargs)
        assert err.value.field == field


def test_real_file_splits_per_prompt_never_leak_and_hold_the_ratio(shared_data):
    campaign = CampaignFactory()
    report = import_file(campaign=campaign, path=shared_data / "hh_pairs_train.jsonl", skip_unsplittable=True)
    assert report.items_created > 1000
    snapshot = snapshot_create(campaign=campaign, created_by=None, split_seed=3)
    splits_of_prompt = defaultdict(set)
    per_split = Counter()
    for record in snapshot_records(snapshot=snapshot):
        splits_of_prompt[record["prompt"]["content_hash"]].add(record["split"])
        per_split[record["split"]] += 1
    assert all(len(s) == 1 for s in splits_of_prompt.values())
    prompts = Counter(next(iter(s)) for s in splits_of_prompt.values())
    n = sum(prompts.values())
    print(f"\nprompts per split on hh_pairs_train: {dict(prompts)} of {n}")
    assert abs(prompts["train"] / n - 0.8) < 0.04
    assert abs(prompts["validation"] / n - 0.1) < 0.03 and abs(prompts["test"] / n - 0.1) < 0.03
    assert snapshot.manifest["counts"]["prompts_by_split"] == dict(prompts)
    reseeded = snapshot_create(campaign=campaign, created_by=None, split_seed=4)
    assert reseeded.manifest["counts"]["prompts_by_split"] != snapshot.manifest["counts"]["prompts_by_split"]


def test_api_researchers_create_list_and_download(judged):
    campaign, people, _ = judged
    researcher = member(campaign, Role.RESEARCHER)
    client = client_for(researcher)
    created = client.post(f"/api/v1/campaigns/{campaign.pk}/snapshots/", {"split_seed": 1}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["manifest"]["counts"]["judgments"] == 12 and "bias" in body["manifest"]
    listed = client.get(f"/api/v1/campaigns/{campaign.pk}/snapshots/").json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]
    download = client.get(f"/api/v1/campaigns/{campaign.pk}/snapshots/{body['id']}/download/?format=canonical")
    assert download.status_code == 200
    lines = b"".join(download.streaming_content).decode().splitlines()
    assert len(lines) == 12
    bad = client.post(f"/api/v1/campaigns/{campaign.pk}/snapshots/", {"aggregation": "mean"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "aggregation"
    annotator = client_for(people[0])
    assert annotator.post(f"/api/v1/campaigns/{campaign.pk}/snapshots/", {}, format="json").status_code == 403
    stranger = client_for(UserFactory())
    assert stranger.get(f"/api/v1/campaigns/{campaign.pk}/snapshots/").status_code == 404


def test_commands_create_export_and_reimport(judged, tmp_path):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    campaign, _, _ = judged
    call_command("snapshot_create", str(campaign.pk), "--seed", "2")
    snapshot = campaign.snapshots.get()
    out = tmp_path / "s.parquet"
    call_command("snapshot_export", str(snapshot.pk), "-f", "parquet", "-o", str(out))
    target = CampaignFactory()
    call_command("import_lossless", str(target.pk), str(out), "--format", "parquet")
    assert Judgment.objects.filter(campaign=target).count() == 12
    with pytest.raises(CommandError) as err:
        call_command("snapshot_export", str(snapshot.pk), "-f", "nope", "-o", str(out))
    assert err.value.returncode == 2


def test_manifest_carries_the_human_agreement_ceiling_without_names():
    from labeling.services.queue import assignment_next, judgment_record
    from labeling.services.snapshots import snapshot_create
    from labeling.services.validation import JudgmentInput
    from tests.factories import CampaignFactory, ItemFactory, member

    campaign = CampaignFactory(overlap=2)
    for _ in range(6):
        ItemFactory(campaign=campaign)
    annotators = [member(campaign, username=f"secret-name-{i}") for i in range(2)]
    for user in annotators:
        while (slot := assignment_next(user=user, campaign=campaign)) is not None:
            judgment_record(user=user, assignment_id=slot.pk, data=JudgmentInput(winner=min(slot.shown_order)))
    snapshot = snapshot_create(campaign=campaign, created_by=None)
    agreement = snapshot.manifest["agreement"]
    assert agreement["judgments"] == 12 and agreement["items_with_overlap"] == 6
    assert agreement["outcome"]["percent_agreement"]["value"] == 1.0
    assert "secret-name" not in str(snapshot.manifest)


def test_record_lines_are_the_canonical_json_of_each_record_byte_for_byte(judged):
    """The snapshot hash reads records through ``RecordLines``, which reuses the encoded parts records of one
    item share: each line must still be the record's own canonical JSON, aggregated records included."""
    campaign, people, items = judged
    Prompt.objects.filter(pk=items[0].prompt_id).update(metadata={"z": 1, "a": {"é": [1.5, None]}, "m": "x\ny"})
    for aggregation in ("none", "majority"):
        snapshot = snapshot_create(campaign=campaign, created_by=None, aggregation=aggregation)
        records = list(snapshot_records(snapshot=snapshot))
        lines = RecordLines()
        assert [lines(r) for r in records] == [_line(r) for r in records]
        assert records[0]["prompt"] is records[1]["prompt"] or aggregation == "majority"
    odd = {**records[0], "extra": 1}  # not a canonical record's keys: encoded whole
    assert RecordLines()(odd) == _line(odd)


@pytest.mark.parametrize("value", [
    "café \"q\"\n\t\x00\x1f\x7f\u2028", 0, -5, 2**70,
    {"id": 1, "ranking": [[1], [0, 2]], "tie": False, "strength": None, "rationale": "naïve\n", "z": "", "a": 2**63},
    {"votes": 3, "agreement": 0.6667}, {"x": 1e-05, "y": [1e16]}, {"n": -(2**70)}, {},
])
def test_compact_writes_what_the_canonical_encoder_writes(value):
    assert _compact(value) == _CANONICAL_JSON.encode(value)
