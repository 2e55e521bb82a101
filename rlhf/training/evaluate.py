"""Evaluation helpers: reward scores, pairwise accuracy of a reward model, win-rate of two policies' responses
under a reward model (with a bootstrap confidence interval), and perplexity of a causal LM on held-out text."""

from __future__ import annotations

import math
import random

import torch


@torch.no_grad()
def score_texts(model, tok, texts: list[str], batch_size: int = 16, max_length: int = 512) -> list[float]:
    """Reward of each full text (prompt + response + eos), tokenised exactly as RewardTrainer does."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores: list[float] = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i : i + batch_size], return_tensors="pt", padding=True, truncation=True,
                  max_length=max_length).to(device)
        scores.extend(model(**enc).logits[:, 0].float().tolist())
    model.train(was_training)
    return scores


def with_eos(tok, text: str) -> str:
    return text if text.endswith(tok.eos_token) else text + tok.eos_token


def pairwise_accuracy(model, tok, rows: list[dict], batch_size: int = 16, max_length: int = 512) -> dict:
    """Fraction of pairs where reward(prompt + chosen) > reward(prompt + rejected), and the mean margin.
    ``rows`` are text rows (see ``common.pairs_to_text``)."""
    if not rows:
        return {"accuracy": float("nan"), "margin": float("nan"), "n": 0}
    chosen = [with_eos(tok, r["prompt"] + r["chosen"]) for r in rows]
    rejected = [with_eos(tok, r["prompt"] + r["rejected"]) for r in rows]
    sc = score_texts(model, tok, chosen, batch_size, max_length)
    sr = score_texts(model, tok, rejected, batch_size, max_length)
    wins = [c > r for c, r in zip(sc, sr, strict=True)]
    return {"accuracy": sum(wins) / len(wins), "margin": sum(c - r for c, r in zip(sc, sr, strict=True)) / len(sc),
            "n": len(rows)}


def bootstrap_ci(values: list[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    return means[int(alpha / 2 * n_boot)], means[min(n_boot - 1, int((1 - alpha / 2) * n_boot))]


def win_rate(model, tok, prompts: list[str], responses_a: list[str], responses_b: list[str],
             batch_size: int = 16, max_length: int = 512, seed: int = 0) -> dict:
    """How often policy A's response outscores policy B's for the same prompt (ties count one half)."""
    if not (len(prompts) == len(responses_a) == len(responses_b)) or not prompts:
        raise ValueError("win_rate: prompts and both response lists must be non-empty and of equal length")
    sa = score_texts(model, tok, [with_eos(tok, p + a) for p, a in zip(prompts, responses_a, strict=True)],
                     batch_size, max_length)
    sb = score_texts(model, tok, [with_eos(tok, p + b) for p, b in zip(prompts, responses_b, strict=True)],
                     batch_size, max_length)
    outcomes = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(sa, sb, strict=True)]
    low, high = bootstrap_ci(outcomes, seed=seed)
    return {"win_rate": sum(outcomes) / len(outcomes), "ci_low": low, "ci_high": high, "n": len(outcomes)}


@torch.no_grad()
def perplexity(model, tok, texts: list[str], max_length: int = 512, batch_size: int = 8) -> float:
    """Token-level perplexity (exp of the mean next-token loss over all non-pad tokens)."""
    model.eval()
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i : i + batch_size], return_tensors="pt", padding=True, truncation=True,
                  max_length=max_length).to(device)
        logits = model(**enc).logits[:, :-1].float()
        targets = enc["input_ids"][:, 1:]
        mask = enc["attention_mask"][:, 1:].bool()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        total_nll += nll[mask].sum().item()
        total_tokens += int(mask.sum())
    return math.exp(total_nll / max(total_tokens, 1))


@torch.no_grad()
def completion_logps(model, tok, prompts: list[str], completions: list[str], batch_size: int = 16,
                     max_length: int = 512) -> list[float]:
    """Sum of log p(completion tokens | prompt) per row. The completion starts where the tokenised prompt and
    the tokenised prompt+completion diverge, as in TRL's DPO preprocessing."""
    model.eval()
    device = next(model.parameters()).device
    out: list[float] = []
    for i in range(0, len(prompts), batch_size):
        seqs, starts = [], []
        for p, c in zip(prompts[i : i + batch_size], completions[i : i + batch_size], strict=True):
            p_ids, full = tok(p)["input_ids"], tok(p + c)["input_ids"][:max_length]
            start = next((k for k, (a, b) in enumerate(zip(p_ids, full, strict=False)) if a != b),
                         min(len(p_ids), len(full)))
            seqs.append(full)
            starts.append(max(start, 1))  # the first token has no prediction
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, s in enumerate(seqs):
            ids[j, : len(s)], mask[j, : len(s)] = torch.tensor(s), 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None].to(device)).squeeze(-1).cpu()
        for j, (s, start) in enumerate(zip(seqs, starts, strict=True)):
            out.append(logp[j, start - 1 : len(s) - 1].sum().item())
    return out


def preference_eval(model, tok, rows: list[dict], beta: float, batch_size: int = 16, max_length: int = 512) -> dict:
    """For a peft policy: how often the policy prefers chosen (log-likelihood), and DPO's implicit reward
    ``beta * (log pi - log pi_ref)`` accuracy and margin, the reference being the adapter switched off."""
    if not rows:
        return {}
    prompts = [r["prompt"] for r in rows]
    pol_c = completion_logps(model, tok, prompts, [r["chosen"] for r in rows], batch_size, max_length)
    pol_r = completion_logps(model, tok, prompts, [r["rejected"] for r in rows], batch_size, max_length)
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            ref_c = completion_logps(model, tok, prompts, [r["chosen"] for r in rows], batch_size, max_length)
            ref_r = completion_logps(model, tok, prompts, [r["rejected"] for r in rows], batch_size, max_length)
    else:  # a plain model is its own reference: every implicit reward is zero
        ref_c, ref_r = pol_c, pol_r
    margins = [beta * ((pc - rc) - (pr - rr)) for pc, pr, rc, rr in zip(pol_c, pol_r, ref_c, ref_r, strict=True)]
    n = len(rows)
    return {
        "logp_accuracy": sum(c > r for c, r in zip(pol_c, pol_r, strict=True)) / n,
        "reward_accuracy": sum(m > 0 for m in margins) / n,
        "reward_margin": sum(margins) / n,
        "logp_chosen": sum(pol_c) / n,
        "logp_rejected": sum(pol_r) / n,
    }
