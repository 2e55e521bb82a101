"""Mid-run checkpoints, so a job whose worker died resumes where it stopped instead of starting over.

Every ``checkpoint_every`` steps (a ``TrainSpec`` field; 0 turns checkpoints off) a job writes
``output_dir/checkpoint-<step>/``: for the Trainer-based jobs (reward, DPO, GRPO, RLOO, SFT, classify, distill)
transformers' own checkpoint (weights or adapter, optimizer, scheduler, RNG states, trainer state), for the
hand-written loops (PPO, pre-training, continued pre-training) ``state.pt`` (trainable weights, optimizer, RNG
states, step, data order). A checkpoint counts only once ``loopwise_checkpoint.json`` is written into it, last and
atomically, naming the hash of the spec: a folder half-written when the worker died, or one left by another spec,
is never resumed. Only the last ``KEEP`` checkpoints are kept, and a job that finishes through
:func:`rlhf.training.run_job` deletes them (they are not artifacts).

On start, :func:`prepare` keeps the progress log up to the checkpoint being resumed (or starts it empty and removes
stale checkpoints); the job then asks :func:`find_resume` where to continue.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

MARKER = "loopwise_checkpoint.json"
STATE = "state.pt"
KEEP = 2  # the newest may be incomplete when a worker dies while saving; the one before it still resumes
# Fields that do not change what is trained: a run moved to another folder, or saving more often, still resumes.
IGNORED_FIELDS = ("output_dir", "checkpoint_every")
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class Resume:
    path: Path
    step: int


def spec_hash(spec) -> str:
    from .specs import spec_to_dict

    data = {k: v for k, v in spec_to_dict(spec).items() if k not in IGNORED_FIELDS}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def every(spec) -> int:
    return int(getattr(spec, "checkpoint_every", 0) or 0)


def _folders(out: Path) -> list[tuple[int, Path]]:
    """``checkpoint-<step>`` folders, newest (highest step) first."""
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def find_resume(out: str | Path, spec) -> Resume | None:
    """The newest complete checkpoint written under the same spec, or None."""
    wanted = spec_hash(spec)
    for step, folder in _folders(Path(out)):
        try:
            marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # no marker: the save did not finish
        if marker.get("spec_sha256") == wanted and marker.get("step") == step:
            return Resume(folder, step)
    return None


def prepare(out: Path, spec) -> Resume | None:
    """Called by ``start_job``: with a checkpoint to resume, cut ``progress.jsonl`` back to its step (the steps
    after it will be trained again); without one, start the log empty and drop checkpoints of another spec."""
    resume = find_resume(out, spec)
    log = out / "progress.jsonl"
    if resume is None:
        clear(out)
        log.write_text("", encoding="utf-8")
        return None
    kept = []
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= resume.step:
                    kept.append(line + "\n")
            except ValueError:
                continue  # a line cut short when the worker died
    log.write_text("".join(kept), encoding="utf-8")
    return resume


def mark(folder: Path, spec, step: int) -> None:
    """Declare ``folder`` complete: written last, via a rename, so it exists whole or not at all."""
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"step": step, "spec_sha256": spec_hash(spec), "kind": spec.kind}) + "\n",
                   encoding="utf-8")
    os.replace(tmp, folder / MARKER)


def prune(out: Path, keep: int = KEEP) -> None:
    for _, folder in _folders(out)[keep:]:
        shutil.rmtree(folder, ignore_errors=True)


def clear(out: str | Path) -> None:
    """Remove every checkpoint (the job finished, or they belong to another spec)."""
    for _, folder in _folders(Path(out)):
        shutil.rmtree(folder, ignore_errors=True)
    for tmp in Path(out).glob("checkpoint-*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def due(spec, step: int, total: int) -> bool:
    """Save after ``step``? Never after the last step: the job saves its real outputs right then."""
    n = every(spec)
    return n > 0 and step % n == 0 and step < total


# --- hand-written loops -----------------------------------------------------------------------------------------

def rng_state() -> dict:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model) -> dict:
    """The weights the optimizer changes (LoRA, or every weight in full training), on the CPU."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model, state: dict) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"checkpoint does not fit the model: unexpected {result.unexpected_keys[:3]}")


def save_state(spec, step: int, state: dict) -> Path:
    """Write ``checkpoint-<step>/state.pt`` through a temporary folder, mark it, keep the last ``KEEP``."""
    import torch

    out = Path(spec.output_dir)
    final, tmp = out / f"checkpoint-{step}", out / f"checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({**state, "step": step, "rng": rng_state()}, tmp / STATE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    mark(final, spec, step)
    prune(out)
    return final


def load_state(resume: Resume) -> dict:
    """The state saved by :func:`save_state`, with the global RNGs already restored."""
    import torch

    # Our own file (optimizer state holds non-tensor Python objects, so weights_only cannot be used).
    state = torch.load(resume.path / STATE, map_location="cpu", weights_only=False)
    set_rng_state(state.pop("rng"))
    return state


# --- transformers Trainer jobs ----------------------------------------------------------------------------------

def trainer_fields(spec) -> dict:
    """TrainingArguments fields: save every ``checkpoint_every`` steps into output_dir, keep ``KEEP``."""
    n = every(spec)
    if n <= 0:
        return {"save_strategy": "no"}
    return {"save_strategy": "steps", "save_steps": n, "save_total_limit": KEEP, "save_only_model": False}


def train(trainer, spec) -> int:
    """``trainer.train()``, resumed from the newest valid checkpoint when there is one. Returns the step it
    resumed from (0: a fresh start)."""
    from transformers import TrainerCallback

    class Marker(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            # Runs after transformers' own flow callback, which asks for a save after the last step too: the
            # job saves its outputs right then, so that checkpoint would only be written to be deleted.
            if state.max_steps and state.global_step >= state.max_steps:
                control.should_save = False
            return control

        # on_save runs after transformers wrote the whole checkpoint folder (and rotated old ones).
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                mark(folder, spec, state.global_step)

    trainer.add_callback(Marker())
    resume = find_resume(spec.output_dir, spec)
    trainer.train(resume_from_checkpoint=str(resume.path) if resume else None)
    return resume.step if resume else 0
