"""REINFORCE leave-one-out: TRL ``RLOOTrainer`` with LoRA. Like GRPO, ``num_generations`` completions per prompt,
but each completion's baseline is the mean reward of the OTHER completions of its prompt (unbiased), and the KL
to the adapter-disabled reference (``beta``) is folded into the reward. Artifacts as in ``grpo.py``."""

from __future__ import annotations

from trl import RLOOConfig, RLOOTrainer

from .common import ProgressFn
from .online import run_group
from .specs import RLOOSpec


def run(spec: RLOOSpec, progress: ProgressFn | None = None) -> dict:
    return run_group(spec, RLOOTrainer, RLOOConfig, progress)
