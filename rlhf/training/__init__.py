"""Training jobs for Loopwise: reward modelling, DPO, sampling, GRPO, RLOO and PPO on LoRA adapters.

Plain Python (torch / transformers / trl / peft); nothing here imports Django or the apps. The web side writes a
spec (``specs.py``) and runs ``python -m rlhf.training spec.json`` or :func:`run_job`. Importing this package
does not import torch: ``specs`` stays cheap for the web process.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .specs import JobSpec, load_spec, save_spec, spec_from_dict

JOB_MODULES = {"reward": "reward", "dpo": "dpo", "generate": "generate", "grpo": "grpo", "rloo": "rloo", "ppo": "ppo"}
# The model-lifecycle jobs (specs in specs_lifecycle.py).
JOB_MODULES.update({"pretrain": "pretrain", "cpt": "cpt", "sft": "sft", "classify": "classify", "distill": "distill",
                    "merge": "merge", "eval": "eval_suite"})


def run_job(spec: JobSpec, progress: Callable[[dict], None] | None = None) -> dict:
    """Run the job named by ``spec.kind`` and return its metrics (also written to ``output_dir/metrics.json``).
    The run is tracked in ``output_dir/run.json`` (spec, code version, data hashes, lineage, artifacts; see
    ``tracking.py``). A training job resumes from a checkpoint of the same spec left in ``output_dir`` (a worker
    died mid-run) and removes its checkpoints once it finished (``checkpoints.py``)."""
    from . import checkpoints
    from .tracking import RunTracker

    spec.validate()
    module = importlib.import_module(f"{__name__}.{JOB_MODULES[spec.kind]}")
    tracker = RunTracker(spec)
    try:
        metrics = module.run(spec, progress=tracker.progress(progress))
    except BaseException as exc:
        tracker.finish(error=exc)
        raise
    checkpoints.clear(spec.output_dir)  # the outputs are saved: checkpoints are no artifacts
    tracker.finish(metrics)
    return metrics


__all__ = ["JobSpec", "load_spec", "run_job", "save_spec", "spec_from_dict"]
