"""``python -m rlhf.training SPEC.json``: run one job, draw a progress bar on stderr, print metrics as JSON on
stdout. Exit codes: 0 done, 1 the job failed, 2 the spec is invalid (nothing was run)."""

from __future__ import annotations

import argparse
import json
import sys
import traceback

from .specs import load_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlhf.training", description=__doc__)
    parser.add_argument("spec", help="path to a job spec JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec)
    except (OSError, ValueError) as exc:
        print(f"error: invalid spec {args.spec}: {exc}", file=sys.stderr)
        return 2

    from tqdm import tqdm

    from . import run_job
    from .device import omp_advice

    advice = omp_advice()
    if advice:
        print(f"note: {advice}", file=sys.stderr)
    bar = None if args.no_progress else tqdm(desc=spec.kind, unit="step", file=sys.stderr, dynamic_ncols=True)

    def on_progress(rec: dict) -> None:
        if bar is None:
            return
        if rec.get("total") and bar.total != rec["total"]:
            bar.reset(total=rec["total"])  # restart the clock: loading the model is not a training step
        bar.n = rec["step"]
        if rec.get("loss") is not None:
            bar.set_postfix(loss=f"{rec['loss']:.4f}", refresh=False)
        bar.refresh()

    try:
        metrics = run_job(spec, progress=on_progress)
    except Exception:  # noqa: BLE001 - any failure of the job is reported the same way
        traceback.print_exc()
        print(f"error: {spec.kind} job failed", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
