"""A campaign's stored PII policy, and the import pass that applies it to an uploaded file before the
import service reads it."""
from __future__ import annotations

import json
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import transaction

from ..errors import ValidationError
from ..models import Campaign, PiiPolicy
from .policy import PiiReport, Policy, RecordRejected, apply_strings, policy_from_dict


def _row(campaign: Campaign) -> PiiPolicy:
    row, _ = PiiPolicy.objects.get_or_create(campaign=campaign, defaults={"key": secrets.token_hex(32)})
    return row


def campaign_policy(*, campaign: Campaign) -> Policy:
    """The campaign's policy (allow everything until one is set), with its pseudonym key."""
    row = _row(campaign)
    return Policy(default=row.default, kinds=dict(row.kinds), names=row.names, key=row.key)


def policy_for(*, campaign: Campaign, override: dict | None) -> Policy:
    """``override`` (a policy dict, validated) keyed with the campaign's key, or the campaign's own."""
    if override is None:
        return campaign_policy(campaign=campaign)
    return policy_from_dict(override, key=_row(campaign).key)


@transaction.atomic
def pii_policy_set(*, campaign: Campaign, policy: dict, changed_by) -> Policy:
    from ..services.audit import audit_record

    parsed = policy_from_dict(policy)
    row = _row(campaign)
    row.default, row.kinds, row.names = parsed.default, dict(parsed.kinds), parsed.names
    row.save(update_fields=["default", "kinds", "names", "updated_at"])
    audit_record(action="pii.policy", actor=changed_by, campaign_id=campaign.pk, object_type="campaign",
                 object_id=campaign.pk, details=parsed.manifest())
    return campaign_policy(campaign=campaign)


@dataclass
class PreparedImport:
    path: Path
    report: PiiReport
    handle: IO  # the temporary file: deleted when closed or garbage-collected

    def summary(self) -> str:
        counts = ", ".join(f"{k} x{n}" for k, n in sorted(self.report.counts.items())) or "nothing found"
        return f"PII policy applied: {counts}; {self.report.records_rejected} record(s) rejected"


def pii_prepare_import(*, campaign: Campaign, path: Path) -> PreparedImport | None:
    """A redacted copy of a JSON-lines upload under the campaign's policy, or None when the policy allows
    everything. Line numbers stay the same: a rejected record becomes an empty line, which the reader skips,
    and is counted. A JSON array or CSV upload is refused while a policy is active (rewriting it would move
    every error's line number): personal data must not slip in unredacted through another container."""
    policy = campaign_policy(campaign=campaign)
    if not policy.active:
        return None
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    if head and not head.startswith(b"{"):
        raise ValidationError(f"campaign {campaign.pk} has a PII policy, which is applied to JSON-lines uploads "
                              "only: convert this JSON array or CSV file to JSON lines (one record per line)",
                              field="file")
    report = PiiReport()
    out = tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", dir=settings.STORAGE_DIR)
    with path.open(encoding="utf-8", errors="surrogateescape") as src:
        for number, line in enumerate(src, 1):
            try:
                record = json.loads(line) if line.strip() else None
            except ValueError:
                out.write(line)  # the import reports it, with this line number
                continue
            if record is None:
                out.write("\n")
                continue
            try:
                cleaned = apply_strings(record, policy, where=f"line {number}", report=report)
            except RecordRejected:
                report.records_rejected += 1
                out.write("\n")
                continue
            out.write(json.dumps(cleaned, ensure_ascii=False) + "\n")
    out.flush()
    return PreparedImport(path=Path(out.name), report=report, handle=out)
