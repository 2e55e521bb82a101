from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import CommandError
from tqdm import tqdm

from ...importers import FORMATS, ImportRejected, ImportReport, import_file
from ...models import Round
from ._base import LoopwiseCommand, campaign_by_ref

# Below this a progress bar is noise.
PROGRESS_MIN_BYTES = 4 << 20


def _summary(report: ImportReport) -> list[str]:
    lines = [
        f"format: {report.format} ({report.container}){'  DRY RUN: nothing was written' if report.dry_run else ''}",
        f"records: {report.records}",
        f"items created: {report.items_created}, judgments created: {report.judgments_created}",
        f"prompts created: {report.prompts_created}, already there: {report.prompts_existing}",
    ]
    if report.duplicates_count:
        shown = ", ".join(str(d["line"]) for d in report.duplicates[:20])
        more = " ..." if report.duplicates_count > 20 else ""
        lines.append(f"duplicates (not imported again): {report.duplicates_count}, lines {shown}{more}")
    if report.skipped_count:
        lines.append(f"skipped: {report.skipped_count}, lines {', '.join(str(s['line']) for s in report.skipped[:20])}")
    lines += [f"note: {note}" for note in report.notes]
    return lines


class Command(LoopwiseCommand):
    help = (
        "Import prompts or labelled pairs from a file into a campaign. Nothing is written unless the whole file "
        "is valid; a rejected file's errors go to stderr as 'line N, field F: message' and the exit code is 2."
    )

    def add_arguments(self, parser):
        parser.add_argument("campaign", help="campaign id or exact name")
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", default="auto", choices=["auto", *sorted(FORMATS)])
        parser.add_argument("--dry-run", action="store_true", help="check the file and report, write nothing")
        parser.add_argument("--label-source", default=None, help="who labelled the pairs (default: the format name)")
        parser.add_argument("--skip-unsplittable", action="store_true",
                            help="hh-rlhf: skip transcripts that do not split into a prompt and two responses")
        parser.add_argument("--round", type=int, default=None, help="round number for the items (default: current)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **opts):
        campaign = campaign_by_ref(opts["campaign"])
        path: Path = opts["path"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file", returncode=2)
        round = None
        if opts["round"] is not None:
            round = Round.objects.filter(campaign=campaign, number=opts["round"]).first()
            if round is None:
                raise CommandError(f"campaign {campaign.pk} has no round {opts['round']}", returncode=2)
        size = path.stat().st_size
        passes = 1 if opts["dry_run"] else 2
        # tqdm redraws with "\r": it writes to the raw stream, which OutputWrapper would end with newlines.
        stream = getattr(self.stderr, "_out", sys.stderr)
        with tqdm(total=size * passes, unit="B", unit_scale=True, file=stream, disable=size < PROGRESS_MIN_BYTES,
                  desc="check and write" if passes == 2 else "check") as bar:
            try:
                report = import_file(
                    campaign=campaign, path=path, fmt=opts["format"], dry_run=opts["dry_run"],
                    label_source=opts["label_source"], skip_unsplittable=opts["skip_unsplittable"], round=round,
                    progress=bar.update,
                )
            except ImportRejected as rejected:
                bar.close()
                for error in rejected.details["errors"]:
                    self.stderr.write(f"line {error['line']}, field {error['field']}: {error['message']}")
                raise CommandError(f"{path}: {rejected.message}", returncode=2) from rejected
        if opts["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        else:
            self.stdout.write("\n".join(_summary(report)))
