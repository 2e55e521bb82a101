"""Evaluate a new policy against its parent (worker side, no Django): win-rate under a reward model and under a
judge (bootstrap 95% CI), KL(new || parent) on the new policy's own samples, and perplexity on a general held-out
text before (parent) and after (new), which shows catastrophic forgetting.

The spec is a plain dict (stored on the evaluate TrainingRun):
``{"output_dir", "model", "adapter", "parent_adapter", "prompts_file", "reward_model", "judge", "temperature",
"top_p", "max_new_tokens", "seed", "max_length", "batch_size"}``. Both policies sample one response per prompt
with the same seed; a pair is a win for the new policy when it scores higher (ties count a half).
"""
from __future__ import annotations

import json
from pathlib import Path

# General English, not the campaign's domain: a rise in perplexity here means the policy forgot language.
HELDOUT_TEXT = [
    "The river runs past the old stone bridge and into the lake behind the town.",
    "She opened the window because the room was warm and the evening air was cool.",
    "Water boils at a lower temperature at high altitude, where the air pressure is lower.",
    "He wrote a short letter to thank his neighbour for the help with the garden.",
    "The library opens at nine in the morning and closes at six in the evening.",
    "Most birds build their nests in spring, when food is easy to find.",
    "A good answer is clear, honest and kind, and it says what it does not know.",
    "The train was late, so they waited on the platform and talked about the weather.",
]


def _generate(spec: dict, adapter: str | None, out: Path, progress) -> list[dict]:
    from rlhf.training import run_job
    from rlhf.training.common import read_jsonl
    from rlhf.training.specs import GenerateSpec

    gen = GenerateSpec(
        output_dir=str(out), model=spec["model"], adapter=adapter, prompts_file=spec["prompts_file"],
        n_per_prompt=1, temperature=spec.get("temperature", 1.0), top_p=spec.get("top_p", 1.0),
        max_new_tokens=spec.get("max_new_tokens", 64), seed=spec.get("seed", 0),
        max_length=spec.get("max_length", 512), batch_size=spec.get("batch_size", 8),
        device=spec.get("device", "auto"),
    )
    run_job(gen, progress=progress)
    return read_jsonl(out / "generations.jsonl")


def _outcomes(a: list[float], b: list[float]) -> list[float]:
    return [1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(a, b, strict=True)]


def _summary(outcomes: list[float], seed: int) -> dict:
    from rlhf.training.evaluate import bootstrap_ci

    low, high = bootstrap_ci(outcomes, seed=seed)
    return {"win_rate": sum(outcomes) / len(outcomes), "ci_low": low, "ci_high": high, "n": len(outcomes)}


def run_evaluation(spec: dict, progress=None) -> dict:
    import torch

    from rlhf.training.common import read_prompts
    from rlhf.training.device import pick_device
    from rlhf.training.evaluate import completion_logps, perplexity
    from rlhf.training.models import chat_text, load_policy, load_tokenizer
    from rlhf.training.rewards import RewardModelFn

    out = Path(spec["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    seed = int(spec.get("seed", 0))
    total = 4
    step = 0

    def tick(label: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress({"step": step, "total": total, "loss": None, "stage": label})

    prompts = read_prompts(spec["prompts_file"])
    new = _generate(spec, spec.get("adapter"), out / "new", None)
    parent = _generate(spec, spec.get("parent_adapter"), out / "parent", None)
    tick("generate")
    new_texts = [r["response"] for r in new]
    parent_texts = [r["response"] for r in parent]
    metrics: dict = {"prompts": len(prompts)}

    if spec.get("judge"):
        from . import judges

        judge = judges.judge_from_spec(spec["judge"])
        a, b = [], []
        for p, x, y in zip(prompts, new_texts, parent_texts, strict=True):
            text = p if isinstance(p, str) else "\n".join(m.get("content", "") for m in p)
            sx, sy = judge(text, [x, y])
            a.append(sx)
            b.append(sy)
        metrics["judge"] = {**_summary(_outcomes(a, b), seed), "name": judges.judge_name(spec["judge"]),
                            "mean_score_new": sum(a) / len(a), "mean_score_parent": sum(b) / len(b)}
    if spec.get("reward_model"):
        device = pick_device(spec.get("device", "auto"))
        fn = RewardModelFn(spec["reward_model"], device, max_length=int(spec.get("max_length", 512)))
        sa, sb = fn(prompts, new_texts), fn(prompts, parent_texts)
        metrics["reward_model"] = {**_summary(_outcomes(sa, sb), seed), "mean_reward_new": sum(sa) / len(sa),
                                   "mean_reward_parent": sum(sb) / len(sb)}
        del fn
    tick("score")

    # KL(new || parent) ~ E_{y ~ new}[log p_new(y|x) - log p_parent(y|x)], summed over the response's tokens.
    tok = load_tokenizer(spec["model"])
    prompt_texts = [chat_text(tok, p) for p in prompts]
    max_length = int(spec.get("max_length", 512))
    model_new = load_policy(spec["model"], adapter=spec.get("adapter")).eval()
    lp_new = completion_logps(model_new, tok, prompt_texts, new_texts, max_length=max_length)
    ppl_after = perplexity(model_new, tok, HELDOUT_TEXT, max_length=max_length)
    del model_new
    model_parent = load_policy(spec["model"], adapter=spec.get("parent_adapter")).eval()
    lp_parent = completion_logps(model_parent, tok, prompt_texts, new_texts, max_length=max_length)
    ppl_before = perplexity(model_parent, tok, HELDOUT_TEXT, max_length=max_length)
    del model_parent
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    tick("kl")
    metrics["kl_to_parent"] = sum(a - b for a, b in zip(lp_new, lp_parent, strict=True)) / max(len(lp_new), 1)
    metrics["perplexity_before"] = ppl_before
    metrics["perplexity_after"] = ppl_after
    metrics["mean_chars_new"] = sum(len(t) for t in new_texts) / max(len(new_texts), 1)
    metrics["mean_chars_parent"] = sum(len(t) for t in parent_texts) / max(len(parent_texts), 1)
    tick("done")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def beats_parent(metrics: dict) -> tuple[bool, str]:
    """The gate: the judge's verdict when there is a judge, else the reward model's; with neither, pass."""
    for key in ("judge", "reward_model"):
        if key in metrics:
            rate = metrics[key]["win_rate"]
            return rate > 0.5, f"{key} win-rate {rate:.3f} (95% CI {metrics[key]['ci_low']:.3f}-{metrics[key]['ci_high']:.3f})"
    return True, "no judge or reward model to compare with: promoted without a gate"
