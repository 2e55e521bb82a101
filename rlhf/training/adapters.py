"""PEFT choices for the lifecycle jobs, and what happens to an adapter after training: merge, export, stack.

- ``lora``: low-rank updates ``W + (alpha / r) * B A`` on ``lora.target_modules`` (rank, alpha, dropout);
- ``ia3``: learned per-channel rescaling of keys, values and the MLP input (a few thousand parameters);
- ``prompt_tuning``: ``num_virtual_tokens`` learned embeddings prepended to every input;
- ``prefix_tuning``: learned keys/values prepended at every attention layer;
- ``full``: no adapter, every weight trains.

LoRA and IA3 merge into the base weights (``merge_and_unload``); prompt and prefix tuning cannot (they add
inputs, not weight deltas), so they stay adapters. Stacking applies several adapters to one base in order,
merging each before loading the next, so the result is one plain folder any job loads as ``model``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .specs_lifecycle import AdaptSpec


def peft_config(spec: AdaptSpec, task_type: str, modules_to_save: list[str] | None = None):
    """The peft config for ``spec.peft`` (None for full fine-tuning)."""
    import peft

    if spec.peft == "full":
        return None
    if spec.peft == "lora":
        return peft.LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                               target_modules=spec.lora.target_modules, task_type=task_type,
                               modules_to_save=modules_to_save)
    if spec.peft == "ia3":
        kwargs = {}
        if spec.ia3_target_modules:
            # IA3 must be told which targeted modules are feed-forward (scaled on the input, not the output).
            mlp = [m for m in spec.ia3_target_modules if "mlp" in m or m in ("down_proj", "fc2", "w2")]
            kwargs = {"target_modules": spec.ia3_target_modules, "feedforward_modules": mlp}
        return peft.IA3Config(task_type=task_type, modules_to_save=modules_to_save, **kwargs)
    if spec.peft == "prompt_tuning":
        return peft.PromptTuningConfig(task_type=task_type, num_virtual_tokens=spec.num_virtual_tokens)
    if spec.peft == "prefix_tuning":
        return peft.PrefixTuningConfig(task_type=task_type, num_virtual_tokens=spec.num_virtual_tokens)
    raise ValueError(f"peft: unknown method {spec.peft!r}")


def wrap(model, spec: AdaptSpec, task_type: str, adapter: str | None = None,
         modules_to_save: list[str] | None = None):
    """The model to train: the base itself (full), a new adapter, or an existing adapter made trainable."""
    from peft import PeftModel, get_peft_model

    if adapter is not None:
        return PeftModel.from_pretrained(model, adapter, is_trainable=True)
    config = peft_config(spec, task_type, modules_to_save)
    return model if config is None else get_peft_model(model, config)


def trainable_params(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def save_trained(model, tok, out: Path, spec: AdaptSpec) -> dict:
    """Save the result: ``model/`` for full training, ``adapter/`` for PEFT (+ ``model/`` merged when asked).
    Returns the artifact paths by name."""
    saved = {}
    is_peft = hasattr(model, "peft_config")
    if is_peft:
        model.save_pretrained(out / "adapter")
        tok.save_pretrained(out / "adapter")
        saved["adapter"] = str(out / "adapter")
    if not is_peft or spec.save_merged:
        plain = model.merge_and_unload() if is_peft else model
        plain.save_pretrained(out / "model")
        tok.save_pretrained(out / "model")
        saved["model"] = str(out / "model")
    return saved


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def adapter_info(adapter_dir: str | Path) -> dict:
    """What an adapter is (peft type, rank, targets) and the sha256 of its weights, for manifests."""
    folder = Path(adapter_dir)
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    weights = next((p for p in (folder / "adapter_model.safetensors", folder / "adapter_model.bin") if p.is_file()),
                   None)
    return {"path": str(folder), "peft_type": config.get("peft_type"), "r": config.get("r"),
            "target_modules": config.get("target_modules"),
            "sha256": sha256_file(weights) if weights else None}


def stack_and_merge(base, adapters: list[str]):
    """Apply ``adapters`` to ``base`` one after the other, merging each into the weights: a domain LoRA from
    continued pre-training, then an instruction LoRA from SFT, gives one model with both."""
    from peft import PeftModel

    model = base
    for path in adapters:
        peft_type = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8")).get("peft_type")
        if peft_type not in ("LORA", "IA3"):
            raise ValueError(f"adapters: {path} is a {peft_type} adapter; only LoRA and IA3 merge into weights")
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    return model
