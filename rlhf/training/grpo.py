"""Group relative policy optimisation: TRL ``GRPOTrainer`` with LoRA. Per prompt, ``num_generations``
completions are sampled; each one's advantage is its reward minus the group mean (divided by the group std);
the policy loss is the clipped importance-weighted advantage, plus ``beta`` * KL to the adapter-disabled
reference. Artifacts: ``adapter/``, ``metrics.json`` (reward first/last quarter), ``progress.jsonl``."""

from __future__ import annotations

from trl import GRPOConfig, GRPOTrainer

from .common import ProgressFn
from .online import run_group
from .specs import GRPOSpec


def run(spec: GRPOSpec, progress: ProgressFn | None = None) -> dict:
    return run_group(spec, GRPOTrainer, GRPOConfig, progress)
