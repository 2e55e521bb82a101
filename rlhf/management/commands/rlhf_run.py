"""``manage.py rlhf_run SPEC.json [--campaign C] [--inline]``: register a training run from a job spec (see
``rlhf.training.specs``; ``output_dir`` is the run's folder) and send it to the worker, or run it here with
``--inline`` (progress on stderr, metrics as JSON on stdout). Successful training runs register their
PolicyVersion / RewardModelVersion like any other run."""
from __future__ import annotations

import json
import sys

from django.core.management.base import CommandError

from labeling.management.commands._base import LoopwiseCommand, campaign_by_ref

from ...models import TrainingRun
from ...services import runs
from ...services.execution import execute_run


class Command(LoopwiseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("spec", help="job spec JSON file (kind, model, data files, hyper-parameters)")
        parser.add_argument("--campaign", help="campaign id or name the run belongs to")
        parser.add_argument("--inline", action="store_true", help="run it in this process instead of a worker")

    def handle(self, *args, spec, campaign=None, inline=False, **options):
        try:
            data = json.loads(open(spec, encoding="utf-8").read())
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"cannot read {spec}: {exc}", returncode=2) from exc
        kind = data.pop("kind", None)
        data_file = data.get("train_file") or data.get("prompts_file") or ""
        run = runs.run_create(
            kind=kind or "", spec=data, campaign=campaign_by_ref(campaign) if campaign else None,
            data_path=data_file, data_sha256=runs.file_sha256(__import__("pathlib").Path(data_file))
            if data_file else "",
        )
        if not inline:
            runs.run_enqueue(run=run)
            self.stdout.write(f"run {run.pk} queued ({run.kind}); artifacts in {run.spec['output_dir']}")
            return

        def show(rec):
            print(f"\rstep {rec.get('step')}/{rec.get('total')} loss {rec.get('loss')}", end="", file=sys.stderr)

        import rlhf.services.execution as execution

        real = execution.run_record_progress
        execution.run_record_progress = lambda *, run_id, record: (show(record), real(run_id=run_id, record=record))[1]
        try:
            done = execute_run(run.pk)
        finally:
            execution.run_record_progress = real
        print(file=sys.stderr)
        self.stdout.write(json.dumps({"run": done.pk, "status": done.status, "metrics": done.metrics}, indent=2))
        if done.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"run {done.pk} {done.status}: {done.error[-2000:]}", returncode=1)
