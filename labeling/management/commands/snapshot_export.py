"""``manage.py snapshot_export SNAPSHOT -f FORMAT -o FILE``: write a snapshot in any export format, streamed
(binary formats too), to a temporary file renamed into place when complete; prints rows and sha256."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from django.core.management.base import CommandError

from ...exporters import RECORD_EXPORTERS, record_exporter_get
from ...models import Snapshot
from ...pii import PiiReport
from ...selectors_governance import snapshot_records
from ...services.audit import audit_record
from ._base import LoopwiseCommand


class _Hashing:
    def __init__(self, fh):
        self.fh, self.digest, self.size, self.closed = fh, hashlib.sha256(), 0, False

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.fh.flush()


class Command(LoopwiseCommand):
    help = "Export a snapshot in a format to a file. Bad options exit 2."

    def add_arguments(self, parser):
        parser.add_argument("snapshot", type=int, help="snapshot id")
        parser.add_argument("-f", "--format", default="canonical", help=f"one of {sorted(RECORD_EXPORTERS)}")
        parser.add_argument("--split", default=None, help="train, validation or test")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("-o", "--output", type=Path, required=True)

    def handle(self, *args, **opts):
        snapshot = Snapshot.objects.select_related("campaign").filter(pk=opts["snapshot"]).first()
        if snapshot is None:
            raise CommandError(f"no snapshot {opts['snapshot']}", returncode=2)
        options = {}
        for pair in opts["option"]:
            key, sep, value = pair.partition("=")
            if not sep:
                raise CommandError(f"--option {pair!r}: expected KEY=VALUE", returncode=2)
            options[key.strip()] = value.strip()
        exporter = record_exporter_get(opts["format"], options)
        report = PiiReport()
        partial = opts["output"].with_name(opts["output"].name + ".part")
        try:
            with partial.open("wb") as fh:
                out = _Hashing(fh)
                rows = exporter.write(snapshot_records(snapshot=snapshot, split=opts["split"], pii_report=report), out)
            os.replace(partial, opts["output"])
        finally:
            partial.unlink(missing_ok=True)
        audit_record(action="data.exported", actor=None, campaign_id=snapshot.campaign_id, object_type="file",
                     object_id=opts["format"], counts={"rows": rows, "bytes": out.size},
                     details={"snapshot": snapshot.pk, "sha256": out.digest.hexdigest(), "path": str(opts["output"])})
        self.stderr.write(f"wrote {rows} rows ({out.size} bytes, sha256 {out.digest.hexdigest()}) to {opts['output']}")
