"""Stack adapters on a base and export one plain model folder: ``model/`` (weights + tokenizer) and
``manifest.json`` naming the base, each adapter (type, rank, targets, sha256 of its weights) in the order applied,
and the sha256 of every exported file. See ``adapters.stack_and_merge``."""

from __future__ import annotations

import json

from .adapters import adapter_info, sha256_file, stack_and_merge
from .common import ProgressFn, start_job, write_metrics
from .models import load_policy, load_reward_model, load_tokenizer
from .specs_lifecycle import MergeSpec


def run(spec: MergeSpec, progress: ProgressFn | None = None) -> dict:
    out, _device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model)
    base = load_policy(spec.model, dtype) if spec.task == "causal_lm" else load_reward_model(spec.model, dtype,
                                                                                             tokenizer=tok)
    infos = [adapter_info(a) for a in spec.adapters]
    merged = stack_and_merge(base, spec.adapters)
    merged.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    files = {p.name: sha256_file(p) for p in sorted((out / "model").iterdir()) if p.is_file()}
    manifest = {"base": spec.model, "task": spec.task, "adapters": infos, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if progress is not None:
        progress({"step": 1, "total": 1, "loss": None})
    return write_metrics(out, {"kind": spec.kind, "adapters": len(infos), "model_dir": str(out / "model")})
