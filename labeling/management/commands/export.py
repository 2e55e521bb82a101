from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.management.base import CommandError

from ... import selectors
from ...exporters import EXPORTERS, exporter_get
from ...models import Round
from ._base import LoopwiseCommand, campaign_by_ref

# The trl-preference options, as flags; any exporter's options can also be given as --option KEY=VALUE.
FLAGS = ("style", "ties", "both_bad", "margin")


class Command(LoopwiseCommand):
    help = "Export a campaign's judgments as training data (JSON lines) to a file or stdout. Bad options exit 2."

    def add_arguments(self, parser):
        parser.add_argument("campaign", help="campaign id or exact name")
        parser.add_argument("--format", default="trl-preference", help=f"one of {sorted(EXPORTERS)}")
        for flag in FLAGS:
            parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None)
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="any exporter option")
        parser.add_argument("--round", type=int, default=None, help="only this round (its number)")
        parser.add_argument("-o", "--output", type=Path, default=None, help="file to write (default: stdout)")

    def handle(self, *args, **opts):
        campaign = campaign_by_ref(opts["campaign"])
        options = {flag: opts[flag] for flag in FLAGS if opts[flag] is not None}
        for pair in opts["option"]:
            key, sep, value = pair.partition("=")
            if not sep:
                raise CommandError(f"--option {pair!r}: expected KEY=VALUE", returncode=2)
            options[key.strip()] = value.strip()
        exporter = exporter_get(opts["format"], options)
        round_ids = None
        if opts["round"] is not None:
            round = Round.objects.filter(campaign=campaign, number=opts["round"]).first()
            if round is None:
                raise CommandError(f"campaign {campaign.pk} has no round {opts['round']}", returncode=2)
            round_ids = [round.pk]
        chunks = exporter.stream(selectors.judgments_for_export(campaign=campaign, round_ids=round_ids))
        if opts["output"] is None:
            try:
                for chunk in chunks:  # whole lines, so each chunk decodes on its own
                    self.stdout.write(chunk.decode("utf-8"), ending="")
                self.stdout.flush()
            except BrokenPipeError:
                # `export ... | head`: the reader has what it wanted; no traceback, and none at exit either.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return
        # Write beside the target and rename at the end: a failed export never leaves a truncated file.
        partial = opts["output"].with_name(opts["output"].name + ".part")
        records = 0
        try:
            with partial.open("wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    records += chunk.count(b"\n")
            os.replace(partial, opts["output"])
        finally:
            partial.unlink(missing_ok=True)
        self.stderr.write(f"wrote {records} records to {opts['output']}")
