"""``manage.py import_lossless CAMPAIGN FILE --format canonical|parquet|hf-datasets``: canonical records back
into a campaign, every judgment kept. A bad file exits 2 with its errors by line."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from ...importers import ImportRejected
from ...importers.canonical import LOSSLESS, lossless_import
from ._base import LoopwiseCommand, campaign_by_ref


class Command(LoopwiseCommand):
    help = "Import canonical JSON lines, Parquet or a saved Hugging Face dataset (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("campaign", help="campaign id or exact name")
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", default="canonical", choices=LOSSLESS)

    def handle(self, *args, **opts):
        campaign = campaign_by_ref(opts["campaign"])
        try:
            report = lossless_import(campaign=campaign, path=opts["path"], fmt=opts["format"])
        except ImportRejected as exc:
            for error in exc.details["errors"]:
                self.stderr.write(f"line {error['line']}, {error['field']}: {error['message']}")
            raise CommandError(exc.message, returncode=2) from exc
        self.stdout.write(f"records {report.records}: items created {report.items_created}, "
                          f"judgments created {report.judgments_created}")
