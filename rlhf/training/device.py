"""Device and dtype choice, and the TrainingArguments fields that depend on them.

Measured on the CPU boxes (see STACK-NOTES): TRL configs default to ``bf16=True`` and
``gradient_checkpointing=True``; on CPU bf16 made steps 5-12x slower and checkpointing only costs time on small
models, and ``DPOConfig`` refuses to build without a GPU unless ``use_cpu=True``. Every job builds its TRL config
through :func:`trainer_kwargs` so those defaults never leak in.
"""

from __future__ import annotations

import os

import torch

# Below this size activations are small: recomputing them (checkpointing) only slows training down.
CHECKPOINTING_MIN_PARAMS = 1_000_000_000


def pick_device(preference: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu. An explicit device that is not available is an error, not a
    silent fallback: a job asked to run on a GPU should fail loudly on a box without one."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if preference == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if preference == "cuda" and not cuda:
        raise ValueError("device: 'cuda' requested but torch.cuda.is_available() is False")
    if preference == "mps" and not mps:
        raise ValueError("device: 'mps' requested but torch.backends.mps.is_available() is False")
    if preference not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: unknown device {preference!r}")
    return torch.device(preference)


def pick_dtype(preference: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA when the GPU supports it, fp32 everywhere else (bf16 on CPU is slow, fp16 training
    needs loss scaling we do not want to debug on MPS)."""
    if preference != "auto":
        dtype = getattr(torch, preference)
        if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("dtype: bfloat16 requested but this GPU does not support it")
        return dtype
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def omp_advice() -> str | None:
    """A hint when torch on CPU runs without ``OMP_NUM_THREADS``: torch then uses every core, which on a shared
    2-core worker made tiny-model steps 1.2-4x slower than one thread. Must be set before torch is imported, so
    this can only advise."""
    if os.environ.get("OMP_NUM_THREADS") or torch.cuda.is_available():
        return None
    cores = os.cpu_count() or 1
    return (f"OMP_NUM_THREADS is not set: torch will use {torch.get_num_threads()} threads on {cores} cores. "
            "Set OMP_NUM_THREADS=1 when other processes share the machine (or to the number of physical cores "
            "for a dedicated worker) before starting Python.")


def use_checkpointing(n_params: int, device: torch.device) -> bool:
    return device.type == "cuda" and n_params >= CHECKPOINTING_MIN_PARAMS


def trainer_kwargs(device: torch.device, dtype: torch.dtype, n_params: int) -> dict:
    """Fields for any TRL/transformers ``TrainingArguments`` subclass that depend on the hardware."""
    return {
        "bf16": device.type == "cuda" and dtype == torch.bfloat16,
        "fp16": device.type == "cuda" and dtype == torch.float16,
        "use_cpu": device.type == "cpu",
        # transformers 5.23 renamed gradient_checkpointing to activation_checkpointing; setting the old name
        # warns, setting the new one overrides TRL's default of True on both.
        "activation_checkpointing": use_checkpointing(n_params, device),
        # Workers are single-process; forked dataloader workers only add start-up time for tokenised rows.
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": device.type == "cuda",
    }
