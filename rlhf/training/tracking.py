"""Experiment tracking on the plain-Python side: every job run through :func:`rlhf.training.run_job` leaves a
``run.json`` in its output folder recording

- ``run_id``, ``kind``, ``status`` (running / done / failed, with the error), start and end times;
- ``spec`` (the whole spec) and ``code_version`` (``git describe --always --dirty`` of the checkout, else the
  installed ``loopwise`` package version);
- ``data``: sha256 and size of every input file the spec names (``*_file`` fields, mixture ``path``s), the data
  snapshot the run saw;
- ``parents``: the runs whose outputs this one starts from (a ``model`` / ``adapter`` / ``student`` /
  ``baseline`` / ``adapters`` path inside another run's folder), the lineage;
- ``metrics`` (final) and ``metrics_over_time`` (``progress.jsonl``: one row per step);
- ``artifacts``: sha256 and size of every file the run wrote.

Optional mirrors, skipped cleanly when the package is missing (neither is a dependency): MLflow when
``MLFLOW_TRACKING_URI`` is set and ``mlflow`` imports; TensorBoard when ``LOOPWISE_TENSORBOARD_DIR`` is set and
``torch.utils.tensorboard`` imports. ``run.json`` says which mirrors ran and why others did not.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARENT_FIELDS = ("model", "adapter", "student", "baseline", "adapters")
REPO = Path(__file__).resolve().parents[2]


def code_version() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=REPO, capture_output=True,
                             text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return "git:" + out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return "loopwise " + importlib.metadata.version("loopwise")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    from .adapters import sha256_file

    return sha256_file(path)


def input_files(spec_dict: dict) -> list[str]:
    """Paths of the spec's data files: ``*_file`` fields at any depth and ``path`` of nested objects."""
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and (key.endswith("_file") or key == "path") and Path(value).is_file():
            found.append(value)

    walk(spec_dict)
    return sorted(set(found))


def parent_runs(spec_dict: dict) -> list[dict]:
    """Runs whose output folder holds a path this spec starts from."""
    parents = []
    for name in PARENT_FIELDS:
        values = spec_dict.get(name)
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str) or not value:
                continue
            for folder in (Path(value), *Path(value).parents[:2]):
                run_file = folder / "run.json"
                if run_file.is_file():
                    run = json.loads(run_file.read_text(encoding="utf-8"))
                    parents.append({"field": name, "path": value, "run_id": run.get("run_id"),
                                    "kind": run.get("kind")})
                    break
    return parents


def hash_tree(root: Path, skip: tuple[str, ...] = ("run.json",)) -> dict[str, dict]:
    return {str(p.relative_to(root)): {"sha256": _sha256(p), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


class Mirrors:
    """MLflow / TensorBoard logging when configured and importable; every call is a no-op otherwise."""

    def __init__(self, run_id: str, kind: str, spec_dict: dict):
        self.status: dict[str, str] = {}
        self.mlflow = self.tb = None
        self.last_step = 0
        if os.environ.get("MLFLOW_TRACKING_URI"):
            try:
                import mlflow

                mlflow.start_run(run_name=f"{kind}-{run_id[:8]}")
                mlflow.log_params({k: str(v)[:250] for k, v in spec_dict.items()})
                self.mlflow, self.status["mlflow"] = mlflow, "on"
            except ImportError:
                self.status["mlflow"] = "skipped: MLFLOW_TRACKING_URI is set but mlflow is not installed"
        tb_dir = os.environ.get("LOOPWISE_TENSORBOARD_DIR")
        if tb_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb, self.status["tensorboard"] = SummaryWriter(str(Path(tb_dir) / f"{kind}-{run_id[:8]}")), "on"
            except ImportError:
                self.status["tensorboard"] = "skipped: LOOPWISE_TENSORBOARD_DIR is set but tensorboard is missing"

    def log(self, rec: dict) -> None:
        numbers = {k: v for k, v in rec.items() if isinstance(v, int | float) and not isinstance(v, bool)
                   and k not in ("step", "total")}
        step = int(rec.get("step") or 0)
        self.last_step = max(self.last_step, step)
        if self.mlflow is not None:
            self.mlflow.log_metrics(numbers, step=step)
        if self.tb is not None:
            for k, v in numbers.items():
                self.tb.add_scalar(k, v, step)

    def close(self, metrics: dict | None, failed: bool) -> None:
        final = {k: v for k, v in (metrics or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if self.mlflow is not None:
            self.mlflow.log_metrics(final)
            self.mlflow.end_run(status="FAILED" if failed else "FINISHED")
        if self.tb is not None:
            # Final metrics (held-out accuracy, perplexity after, ...) under "final/", at the last step, so they
            # sit beside the curves instead of only in metrics.json.
            for k, v in final.items():
                self.tb.add_scalar(f"final/{k}", v, self.last_step)
            self.tb.flush()
            self.tb.close()


class RunTracker:
    """Writes ``run.json`` at the start, after each progress record (cheap fields only) and at the end."""

    def __init__(self, spec):
        self.spec_dict = dataclasses.asdict(spec)
        self.out = Path(spec.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.run: dict[str, Any] = {
            "run_id": uuid.uuid4().hex, "kind": spec.kind, "status": "running",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished_at": None,
            "code_version": code_version(), "spec": self.spec_dict,
            "data": {p: {"sha256": _sha256(Path(p)), "bytes": Path(p).stat().st_size}
                     for p in input_files(self.spec_dict)},
            "parents": parent_runs(self.spec_dict), "metrics_over_time": "progress.jsonl",
        }
        self.mirrors = Mirrors(self.run["run_id"], spec.kind, self.spec_dict)
        self.run["mirrors"] = self.mirrors.status
        self._write()

    def _write(self) -> None:
        (self.out / "run.json").write_text(json.dumps(self.run, indent=2, default=str) + "\n", encoding="utf-8")

    def progress(self, inner: Callable[[dict], None] | None) -> Callable[[dict], None]:
        def on_progress(rec: dict) -> None:
            self.mirrors.log(rec)
            if inner is not None:
                inner(rec)

        return on_progress

    def finish(self, metrics: dict | None = None, error: BaseException | None = None) -> None:
        self.run.update(status="failed" if error else "done", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        metrics=metrics, artifacts=hash_tree(self.out))
        if error is not None:
            self.run["error"] = f"{type(error).__name__}: {error}"
        self.mirrors.close(metrics, failed=error is not None)
        self._write()
