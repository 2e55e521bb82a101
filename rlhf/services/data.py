"""Training data for a run: the campaign's judgments as TRL preference rows in a JSONL file, with its sha256.

Rows come from the ``trl-preference`` exporter in ``conversational`` style (chat prompts stay message lists, so
training renders them with the policy's chat template exactly as generation does), with ``margin`` from the
strength of preference (1-3; 0 where none was given). Ties and both-bad judgments carry no preference between
the two responses and are dropped (documented rule: they are counted in the data report, never trained on).
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from labeling.exporters import exporter_get
from labeling.models import Campaign
from labeling.selectors import judgments_for_export


@dataclass(frozen=True)
class DataFile:
    path: Path
    sha256: str
    rows: int
    eval_path: Path | None = None
    eval_rows: int = 0


def preference_rows(*, campaign: Campaign, round_ids: list[int] | None) -> list[dict]:
    exporter = exporter_get("trl-preference", {"style": "conversational", "margin": "strength"})
    rows = []
    for block in exporter.stream(judgments_for_export(campaign=campaign, round_ids=round_ids)):
        rows += [json.loads(line) for line in block.decode().splitlines() if line.strip()]
    return rows


def write_rows(path: Path, rows: list[dict]) -> str:
    """Write JSONL (sorted keys: the same rows always give the same bytes) and return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _prompt_key(row: dict) -> str:
    return json.dumps(row["prompt"], sort_keys=True)


def build_preference_data(
    *, campaign: Campaign, round_ids: list[int] | None, folder: Path, eval_fraction: float = 0.0, seed: int = 0
) -> DataFile:
    """``train.jsonl`` (and ``eval.jsonl`` when ``eval_fraction`` > 0, split by prompt so no prompt is on both
    sides) under ``folder``. The sha256 is of the training file."""
    rows = preference_rows(campaign=campaign, round_ids=round_ids)
    eval_rows: list[dict] = []
    if eval_fraction > 0 and rows:
        prompts = sorted({_prompt_key(r) for r in rows})
        random.Random(seed).shuffle(prompts)
        held = set(prompts[: int(len(prompts) * eval_fraction)])
        eval_rows = [r for r in rows if _prompt_key(r) in held]
        rows = [r for r in rows if _prompt_key(r) not in held]
    sha = write_rows(folder / "train.jsonl", rows)
    eval_path = None
    if eval_rows:
        eval_path = folder / "eval.jsonl"
        write_rows(eval_path, eval_rows)
    return DataFile(folder / "train.jsonl", sha, len(rows), eval_path, len(eval_rows))
