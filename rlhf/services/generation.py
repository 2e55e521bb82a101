"""Generation runs that fill a round: pick the round's prompts, write them for the generate job, and when the
run succeeds turn its samples into comparison items (``labeling.services.items.items_create``) with a
ResponseProvenance row per response.

Pairing, per prompt, of its ``n`` samples into ``n // 2`` pairs (identical texts never face each other):
- ``random``: a seeded shuffle, then consecutive pairs;
- ``uncertain``: the pairs whose reward-model scores are closest (greedy, smallest |r_a - r_b| first): the
  comparisons the current reward model is least sure about.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from labeling.errors import ValidationError
from labeling.exporters.chat import hh_turns
from labeling.models import Campaign, Prompt, Response, Round
from labeling.services.items import ItemSpec, PromptSpec, ResponseSpec, items_create

from ..models import PolicyVersion, ResponseProvenance, RewardModelVersion, TrainingRun
from .registry import policy_spec_fields
from .runs import run_create, run_dir

# C0 control characters but tab and newline: PostgreSQL text cannot hold NUL, and none of them is readable.
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10))


def clean_text(text: str) -> str:
    """A sampled response as stored: control characters (an untrained model emits NUL and friends) removed."""
    return text.translate(_CONTROL).encode("utf-8", "replace").decode("utf-8")


GENERATION_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 64, "seed": 0}
GENERATION_KEYS = ("temperature", "top_p", "max_new_tokens", "seed", "batch_size", "max_length", "device", "dtype")


def prompt_as_chat(prompt: Prompt) -> list[dict]:
    """What the policy sees: chat prompts as stored; an HH transcript split into its turns; other text as one
    user message. Training data (the exporter's conversational style) uses the same rule."""
    if prompt.kind == Prompt.Kind.CHAT:
        return prompt.messages
    return hh_turns(prompt.text) or [{"role": "user", "content": prompt.text}]


def prompts_for_round(*, campaign: Campaign, n: int, seed: int) -> list[Prompt]:
    """``n`` prompts (seeded sample) from the campaign's training pool: prompts whose split is train or unset."""
    pool = list(Prompt.objects.filter(campaign=campaign, split__in=["", Prompt.Split.TRAIN]).order_by("id"))
    if not pool:
        raise ValidationError(f"campaign {campaign.pk} has no prompts to generate from", field="prompts")
    if n >= len(pool):
        return pool
    return sorted(random.Random(seed).sample(pool, n), key=lambda p: p.pk)


@transaction.atomic
def generation_run_create(
    *,
    campaign: Campaign,
    round: Round,
    policy: PolicyVersion,
    prompts: list[Prompt],
    n_per_prompt: int = 2,
    generation: dict | None = None,
    pairing: str = "random",
    reward_model: RewardModelVersion | None = None,
    created_by: AbstractBaseUser | None = None,
) -> TrainingRun:
    """A queued generate run whose success fills ``round`` with items sampled from ``policy``."""
    if n_per_prompt < 2:
        raise ValidationError("responses_per_prompt must be at least 2 to make pairs", field="responses_per_prompt")
    if pairing not in ("random", "uncertain"):
        raise ValidationError("pairing must be random or uncertain", field="pairing")
    if pairing == "uncertain" and reward_model is None:
        raise ValidationError("uncertain pairing needs a reward model", field="pairing")
    params = {**GENERATION_DEFAULTS, **{k: v for k, v in (generation or {}).items() if k in GENERATION_KEYS}}
    spec = {**policy_spec_fields(policy), **params, "n_per_prompt": n_per_prompt, "prompts_file": "pending"}
    run = run_create(kind=TrainingRun.Kind.GENERATE, spec=spec, campaign=campaign, round=round, policy=policy,
                     reward_model=reward_model, created_by=created_by)
    folder = run_dir(run.pk)
    folder.mkdir(parents=True, exist_ok=True)
    prompts_file = folder / "prompts.jsonl"
    with open(prompts_file, "w", encoding="utf-8") as fh:
        for p in prompts:
            fh.write(json.dumps({"prompt": prompt_as_chat(p)}, ensure_ascii=False) + "\n")
    run.spec["prompts_file"] = str(prompts_file)
    run.options = {"prompt_ids": [p.pk for p in prompts], "pairing": pairing,
                   "reward_model_dir": reward_model.model_dir if reward_model else None}
    run.save(update_fields=["spec", "options"])
    return run


def pair_indexes(texts: list[str], scores: list[float] | None, pairing: str, rng: random.Random) -> list[tuple[int, int]]:
    """Disjoint pairs of sample indexes (see the module docstring)."""
    idx = list(range(len(texts)))
    candidates: list[tuple[float, int, int]] = []
    if pairing == "uncertain" and scores is not None:
        for a in idx:
            for b in idx[a + 1:]:
                if texts[a] != texts[b]:
                    candidates.append((abs(scores[a] - scores[b]), a, b))
        candidates.sort()
    else:
        rng.shuffle(idx)
        for k in range(len(idx)):
            for j in range(k + 1, len(idx)):
                if texts[idx[k]] != texts[idx[j]]:
                    candidates.append((0.0, idx[k], idx[j]))
    used: set[int] = set()
    pairs = []
    for _, a, b in candidates:
        if a in used or b in used:
            continue
        used.update((a, b))
        pairs.append((a, b))
    return pairs


def register_generation(*, run: TrainingRun) -> dict:
    """Called in the transaction marking a generate run succeeded: items for ``run.round`` (if the run fills a
    round) and their provenance. Returns the items report."""
    if run.round_id is None or not run.options.get("prompt_ids"):
        return {}
    folder = run_dir(run.pk)
    rows = [json.loads(line) for line in (folder / "generations.jsonl").read_text(encoding="utf-8").splitlines() if line]
    scores_path = folder / "scores.json"
    scores = json.loads(scores_path.read_text()) if scores_path.is_file() else None
    prompts = {p.pk: p for p in Prompt.objects.filter(pk__in=run.options["prompt_ids"])}
    ordered = [prompts[pid] for pid in run.options["prompt_ids"]]
    policy = run.policy
    params = {k: run.spec.get(k) for k in ("temperature", "top_p", "max_new_tokens", "seed")}
    params["policy"] = policy.label
    by_prompt: dict[int, list[dict]] = {}
    for i, row in enumerate(rows):
        row["response"] = clean_text(row["response"])
        row["score"] = scores[i] if scores else None
        by_prompt.setdefault(row["prompt_index"], []).append(row)
    rng = random.Random(run.spec.get("seed", 0))
    specs = []
    for pi, samples in sorted(by_prompt.items()):
        samples.sort(key=lambda r: r["sample_index"])
        texts = [s["response"] for s in samples]
        pair_scores = [s["score"] for s in samples] if scores else None
        prompt = ordered[pi]
        for a, b in pair_indexes(texts, pair_scores, run.options.get("pairing", "random"), rng):
            specs.append(ItemSpec(
                prompt=PromptSpec(text=prompt.text, messages=prompt.messages),
                responses=[
                    ResponseSpec(text=samples[k]["response"], model_name=policy.label,
                                 generation_params={**params, "sample_index": samples[k]["sample_index"]},
                                 metadata={"finished": samples[k]["finished"], "run": run.pk})
                    for k in (a, b)
                ],
                metadata={"generated_by": policy.label, "run": run.pk, "pairing": run.options.get("pairing")},
            ))
    report = items_create(campaign=run.campaign, round=run.round, specs=specs)
    # Provenance: each new response of this run, matched back to its sample.
    sample_of = {(s["prompt_index"], s["response"]): s for s in rows}
    index_of = {p.pk: i for i, p in enumerate(ordered)}
    provenance = []
    for resp in Response.objects.filter(round=run.round, model_name=policy.label, metadata__run=run.pk):
        sample = sample_of.get((index_of.get(resp.prompt_id), resp.text), {})
        provenance.append(ResponseProvenance(
            response=resp, policy=policy, run=run, generation_params=resp.generation_params,
            sample_index=sample.get("sample_index", 0), reward=sample.get("score"),
        ))
    ResponseProvenance.objects.bulk_create(provenance, ignore_conflicts=True)
    return report.as_dict()


def score_generations(*, run: TrainingRun) -> None:
    """For uncertain pairing: score every sample with the reward model and write ``scores.json`` (worker
    side; loads torch)."""
    path = run.options.get("reward_model_dir")
    if run.options.get("pairing") != "uncertain" or not path:
        return
    from rlhf.training.device import pick_device
    from rlhf.training.rewards import RewardModelFn

    folder = run_dir(run.pk)
    rows = [json.loads(line) for line in (folder / "generations.jsonl").read_text(encoding="utf-8").splitlines() if line]
    prompts = [json.loads(line)["prompt"] for line in Path(run.spec["prompts_file"]).read_text().splitlines() if line]
    fn = RewardModelFn(path, pick_device(run.spec.get("device", "auto")), max_length=int(run.spec.get("max_length", 512)))
    scores = fn([prompts[r["prompt_index"]] for r in rows], [r["response"] for r in rows])
    (folder / "scores.json").write_text(json.dumps(scores))
