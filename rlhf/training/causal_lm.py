"""Causal-LM training on unlabeled text, nanoGPT style: tokenise the corpus into one stream (documents joined with
eos), cut it into blocks of ``max_length`` tokens (packing: no padding, no wasted compute), and train next-token
prediction with AdamW, linear warmup and cosine decay, gradient clipping. Shared by pre-training and continued
pre-training; a plain loop, not a Trainer, because the data is already dense tensors and the loop is 30 lines.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from . import checkpoints
from .common import Progress, read_jsonl


def read_corpus(path: str | Path, limit: int | None = None) -> list[str]:
    """Documents of a ``.txt`` (the whole file, one document) or ``.jsonl`` (``{"text"}`` per row) file."""
    path = Path(path)
    if path.suffix == ".jsonl":
        rows = read_jsonl(path, limit)
        for i, row in enumerate(rows, 1):
            if not isinstance(row.get("text"), str):
                raise ValueError(f"{path}: row {i}: 'text' must be a string")
        return [row["text"] for row in rows]
    text = path.read_text(encoding="utf-8")
    if limit is not None:  # max_train_rows on a .txt file counts lines
        text = "\n".join(text.split("\n")[:limit])
    return [text]


def read_text_set(path: str | Path, max_rows: int | None = None, lines_per_text: int = 16) -> list[str]:
    """Texts of an evaluation set: JSONL rows, or a .txt file cut into ``lines_per_text``-line pieces (scoring
    one whole-file text would only see its first ``max_length`` tokens)."""
    if Path(path).suffix == ".jsonl":
        return [t for t in read_corpus(path, max_rows) if t.strip()]
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    texts = ["\n".join(lines[i : i + lines_per_text]) for i in range(0, len(lines), lines_per_text)]
    return [t for t in texts if t.strip()][:max_rows]


def token_stream(tok, docs: list[str]) -> torch.Tensor:
    """All documents as one id stream, each followed by eos so the model learns where documents end."""
    ids: list[int] = []
    for doc in docs:
        ids.extend(tok(doc, add_special_tokens=False)["input_ids"])
        ids.append(tok.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def split_stream(ids: torch.Tensor, eval_fraction: float, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train on the head of the stream, hold out the tail (at least one block)."""
    n_eval = max(block + 1, int(len(ids) * eval_fraction))
    if len(ids) - n_eval < block + 1:
        raise ValueError(f"train_file: {len(ids)} tokens is too short for max_length={block} plus a held-out part")
    return ids[:-n_eval], ids[-n_eval:]


def pack(ids: torch.Tensor, block: int) -> torch.Tensor:
    """Non-overlapping blocks of ``block`` tokens (the ragged tail is dropped): shape (n_blocks, block)."""
    n = len(ids) // block
    if n == 0:
        raise ValueError(f"not enough tokens ({len(ids)}) for one block of {block}")
    return ids[: n * block].view(n, block)


@torch.no_grad()
def blocks_loss(model, blocks: torch.Tensor, batch_size: int, device) -> float:
    """Mean next-token loss over packed blocks (every position counts the same)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        batch = blocks[i : i + batch_size].to(device)
        logits = model(input_ids=batch).logits[:, -batch.shape[1]:-1].float()  # prompt tuning prepends tokens
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="sum")
        total, count = total + nll.item(), count + batch[:, 1:].numel()
    model.train(was_training)
    return total / max(count, 1)


def perplexity_of(model, blocks: torch.Tensor, batch_size: int, device) -> float:
    return math.exp(blocks_loss(model, blocks, batch_size, device))


def lr_at(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the base learning rate: linear warmup, then cosine down to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def total_steps(spec, n_blocks: int) -> int:
    if spec.max_steps > 0:
        return spec.max_steps
    per_epoch = max(1, n_blocks // (spec.batch_size * spec.grad_accum))
    return max(1, int(per_epoch * spec.epochs))


def train_blocks(model, blocks: torch.Tensor, spec, device, progress: Progress,
                 eval_blocks: torch.Tensor | None = None) -> list[dict]:
    """Train on shuffled packed blocks for ``total_steps``; returns the loss curve (one row per step, with
    ``eval_loss`` every ``spec.eval_every`` steps). ``progress`` gets one record per step. Every
    ``spec.checkpoint_every`` steps the trainable weights, optimizer, data order and RNGs are saved; a checkpoint
    of the same spec in ``output_dir`` is resumed (``checkpoints.py``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec.lr, betas=(0.9, 0.95), weight_decay=spec.weight_decay)
    steps = total_steps(spec, len(blocks))
    warmup = int(spec.warmup_ratio * steps)
    gen = torch.Generator().manual_seed(spec.seed)
    order, cursor = torch.randperm(len(blocks), generator=gen), 0
    curve: list[dict] = []
    start, elapsed_before = 0, 0.0
    resume = checkpoints.find_resume(spec.output_dir, spec)
    if resume is not None:
        state = checkpoints.load_state(resume)
        checkpoints.load_trainable(model, state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        order, cursor, curve, start = state["order"], state["cursor"], state["curve"], state["step"]
        elapsed_before = curve[-1]["elapsed_s"] if curve else 0.0
    progress.start(steps, resumed_from=start)
    model.train()
    t0 = time.monotonic() - elapsed_before
    for step in range(start, steps):
        for group in opt.param_groups:
            group["lr"] = spec.lr * lr_at(step, steps, warmup, spec.min_lr_ratio)
        loss_sum = 0.0
        for _ in range(spec.grad_accum):
            if cursor + spec.batch_size > len(order):  # next epoch: reshuffle
                order, cursor = torch.randperm(len(blocks), generator=gen), 0
            batch = blocks[order[cursor : cursor + spec.batch_size]].to(device)
            cursor += spec.batch_size
            loss = model(input_ids=batch, labels=batch).loss / spec.grad_accum
            loss.backward()
            loss_sum += loss.item()
        torch.nn.utils.clip_grad_norm_(params, spec.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        row = {"step": step + 1, "loss": loss_sum, "lr": opt.param_groups[0]["lr"],
               "elapsed_s": round(time.monotonic() - t0, 2)}
        if eval_blocks is not None and spec.eval_every and ((step + 1) % spec.eval_every == 0 or step + 1 == steps):
            row["eval_loss"] = blocks_loss(model, eval_blocks, spec.batch_size, device)
        curve.append(row)
        if checkpoints.due(spec, step + 1, steps):
            checkpoints.save_state(spec, step + 1, {
                "model": checkpoints.trainable_state(model), "optimizer": opt.state_dict(),
                "generator": gen.get_state(), "order": order, "cursor": cursor, "curve": curve})
        progress.record(step + 1, row["loss"], **{k: v for k, v in row.items() if k not in ("step", "loss")})
    return curve


def write_curve(out: Path, curve: list[dict]) -> None:
    """``loss_curve.json`` (rows of step / loss / lr / eval_loss) and ``loss_curve.svg`` to look at."""
    (out / "loss_curve.json").write_text(json.dumps(curve) + "\n", encoding="utf-8")
    (out / "loss_curve.svg").write_text(curve_svg(curve), encoding="utf-8")


def curve_svg(curve: list[dict], width: int = 480, height: int = 240) -> str:
    """A dependency-free line chart of train (blue) and held-out (orange) loss."""
    series = {"loss": "#1f77b4", "eval_loss": "#ff7f0e"}
    points = [(r["step"], r[k], k) for r in curve for k in series if r.get(k) is not None]
    if not points:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"></svg>\n'
    x_max = max(p[0] for p in points)
    y_min, y_max = min(p[1] for p in points), max(p[1] for p in points)
    y_span = (y_max - y_min) or 1.0

    def xy(step: float, value: float) -> str:
        return f"{40 + (width - 50) * step / x_max:.1f},{10 + (height - 40) * (y_max - value) / y_span:.1f}"

    lines = []
    for key, colour in series.items():
        pts = " ".join(xy(s, v) for s, v, k in points if k == key)
        if pts:
            lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
    labels = (f'<text x="2" y="16" font-size="10">{y_max:.2f}</text>'
              f'<text x="2" y="{height - 30}" font-size="10">{y_min:.2f}</text>'
              f'<text x="{width - 60}" y="{height - 8}" font-size="10">step {x_max}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            f'{labels}{"".join(lines)}</svg>\n')
