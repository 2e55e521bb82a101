"""PPO with a value head, written out (TRL 1.16 has no PPO trainer, not even in ``trl.experimental``).

One iteration:
1. rollout: sample a response for ``rollout_batch_size`` prompts with the LoRA policy;
2. score: the reward model/function scores each full response; every response token also gets a KL penalty
   ``-beta * (log pi - log pi_ref)``, the reference being the same weights with the adapter switched off;
3. GAE: per-token advantages and returns from the value head (a linear layer on the policy's last hidden state);
4. ``ppo_epochs`` passes over ``num_minibatches`` minibatches: clipped policy loss + ``vf_coef`` * clipped value
   loss, one Adam step per minibatch.
Artifacts: ``adapter/``, ``value_head.pt``, ``metrics.json`` (score first/last quarter), ``progress.jsonl``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
from torch import nn

from . import checkpoints
from .common import Progress, ProgressFn, lora_config, read_prompts, start_job, write_metrics
from .generate import encode_prompts, left_pad
from .models import load_policy, load_tokenizer
from .rewards import build_reward
from .specs import PPOSpec


class ValueHead(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.proj.weight)  # start at V = 0: early advantages are just the rewards
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden.float()).squeeze(-1)


@dataclass
class Rollout:
    ids: torch.Tensor  # (B, Q + R) left-padded query then response
    mask: torch.Tensor  # attention mask; response positions after eos are 0
    n_query: int
    resp_mask: torch.Tensor  # (B, R) 1 for response tokens up to and including eos
    logp: torch.Tensor  # (B, R) log pi_old of each response token
    values: torch.Tensor  # (B, R) V_old at the state before each response token
    advantages: torch.Tensor
    returns: torch.Tensor
    scores: torch.Tensor  # (B,) reward of each response
    kl: torch.Tensor  # (B,) summed log pi - log pi_ref


def forward(model, head, ids, mask, n_query: int, temperature: float, with_values: bool = True):
    """Log-probs of the response tokens (and values of the states that predict them)."""
    # Position ids from the mask, as generate() computes them for left-padded prompts.
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=with_values)
    logits = out.logits[:, n_query - 1 : -1].float() / temperature
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, n_query:, None]).squeeze(-1)
    values = head(out.hidden_states[-1][:, n_query - 1 : -1]) if with_values else None
    return logp, values


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimation over response tokens; the value after the last token is 0."""
    advantages = torch.zeros_like(rewards)
    next_value, next_adv = torch.zeros_like(rewards[:, 0]), torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * mask[:, t]
        advantages[:, t] = next_adv
        # Padding after eos must not leak value into the last real token.
        next_value = values[:, t] * mask[:, t]
    return advantages, advantages + values


def response_mask(resp: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 up to and including the first eos, 0 after it (generate pads finished rows)."""
    is_eos = (resp == eos_id).long()
    after_eos = (is_eos.cumsum(-1) - is_eos) > 0
    return (~after_eos).float()


@torch.no_grad()
def rollout(model, head, tok, reward_fn, prompts: list, prompt_ids: list, spec: PPOSpec, device) -> Rollout:
    enc = left_pad(tok, prompt_ids, device)
    n_query = enc["input_ids"].shape[1]
    model.eval()
    ids = model.generate(**enc, max_new_tokens=spec.max_new_tokens, do_sample=True, temperature=spec.temperature,
                         top_p=spec.top_p, top_k=0, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    resp_mask = response_mask(ids[:, n_query:], tok.eos_token_id)
    mask = torch.cat([enc["attention_mask"], resp_mask.long()], dim=1)
    logp, values = forward(model, head, ids, mask, n_query, spec.temperature)
    with model.disable_adapter():
        ref_logp, _ = forward(model, head, ids, mask, n_query, spec.temperature, with_values=False)

    texts = [tok.decode(r[m.bool()], skip_special_tokens=True) for r, m in zip(ids[:, n_query:], resp_mask, strict=True)]
    completions = [t if isinstance(p, str) else [{"role": "assistant", "content": t}] for p, t in zip(prompts, texts, strict=True)]
    scores = torch.tensor(reward_fn(prompts=prompts, completions=completions), dtype=torch.float, device=device)

    kl = (logp - ref_logp) * resp_mask
    rewards = -spec.beta * kl
    last = (resp_mask.sum(-1).long() - 1).clamp(min=0)  # the score lands on the last real response token
    rewards[torch.arange(len(last)), last] += scores
    values = values * resp_mask
    advantages, returns = gae(rewards, values, resp_mask, spec.gamma, spec.lam)
    return Rollout(ids, mask, n_query, resp_mask, logp, values, whiten(advantages, resp_mask), returns, scores,
                   kl.sum(-1))


def ppo_loss(model, head, ro: Rollout, idx: torch.Tensor, spec: PPOSpec) -> tuple[torch.Tensor, dict]:
    logp, values = forward(model, head, ro.ids[idx], ro.mask[idx], ro.n_query, spec.temperature)
    m, adv, ret, old_v = ro.resp_mask[idx], ro.advantages[idx], ro.returns[idx], ro.values[idx]
    ratio = torch.exp(logp - ro.logp[idx])
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - spec.cliprange, 1 + spec.cliprange))
    v_clipped = old_v + (values - old_v).clamp(-spec.cliprange_value, spec.cliprange_value)
    vf = 0.5 * torch.max((values - ret) ** 2, (v_clipped - ret) ** 2)
    pg_loss, vf_loss = masked_mean(pg, m), masked_mean(vf, m)
    stats = {"pg_loss": pg_loss.item(), "vf_loss": vf_loss.item(),
             "clipfrac": masked_mean(((ratio - 1).abs() > spec.cliprange).float(), m).item(),
             "approx_kl": masked_mean(0.5 * (logp - ro.logp[idx]) ** 2, m).item()}
    return pg_loss + spec.vf_coef * vf_loss, stats


def update(model, head, optimizer, ro: Rollout, spec: PPOSpec, gen: torch.Generator) -> dict:
    # Dropout stays off, as in the rollout: with LoRA (or model) dropout on here, the ratio pi / pi_old would be
    # off 1 before the first step (dropout noise, not learning) and tokens would hit the clip for nothing.
    model.eval()
    n = ro.ids.shape[0]
    totals: dict[str, float] = {}
    count = 0
    for _ in range(spec.ppo_epochs):
        for idx in torch.randperm(n, generator=gen).chunk(spec.num_minibatches):
            loss, stats = ppo_loss(model, head, ro, idx.to(ro.ids.device), spec)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
            optimizer.step()
            for k, v in {"loss": loss.item(), **stats}.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
    return {k: v / count for k, v in totals.items()}


def build_policy(spec: PPOSpec, dtype, device):
    from peft import get_peft_model

    model = get_peft_model(load_policy(spec.model, dtype), lora_config(spec, "CAUSAL_LM")).to(device)
    head = ValueHead(model.config.hidden_size).to(device)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return model, head, optimizer


def run(spec: PPOSpec, progress: ProgressFn | None = None) -> dict:
    out, device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model, padding_side="left")
    prompts = read_prompts(spec.prompts_file, spec.max_train_rows)
    prompt_ids = encode_prompts(tok, prompts, max(1, spec.max_length - spec.max_new_tokens))
    reward_fn = build_reward(spec.reward_model, spec.reward_function, device, spec.max_length)
    model, head, optimizer = build_policy(spec, dtype, device)
    per_epoch = math.ceil(len(prompts) / spec.rollout_batch_size)
    total = spec.max_steps if spec.max_steps > 0 else math.ceil(spec.epochs * per_epoch)
    gen, rng = torch.Generator().manual_seed(spec.seed), random.Random(spec.seed)
    tracker, history = Progress(out, progress), []
    order: list[int] = []
    start = 0
    resume = checkpoints.find_resume(out, spec)
    if resume is not None:  # a worker died mid-run: continue from its last checkpoint
        state = checkpoints.load_state(resume)
        checkpoints.load_trainable(model, state["model"])
        head.load_state_dict(state["value_head"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        rng.setstate(state["order_rng"])
        order, history, start = state["order"], state["history"], state["step"]
    tracker.start(total, resumed_from=start)
    for step in range(start + 1, total + 1):
        while len(order) < spec.rollout_batch_size:  # reshuffle the prompts each pass
            order += rng.sample(range(len(prompts)), len(prompts))
        batch, order = order[: spec.rollout_batch_size], order[spec.rollout_batch_size :]
        ro = rollout(model, head, tok, reward_fn, [prompts[i] for i in batch], [prompt_ids[i] for i in batch],
                     spec, device)
        stats = update(model, head, optimizer, ro, spec, gen)
        rec = {"score": ro.scores.mean().item(), "kl": ro.kl.mean().item(),
               "response_length": ro.resp_mask.sum(-1).mean().item(), **stats}
        history.append(dict(rec))
        if checkpoints.due(spec, step, total):
            checkpoints.save_state(spec, step, {
                "model": checkpoints.trainable_state(model), "value_head": head.state_dict(),
                "optimizer": optimizer.state_dict(), "generator": gen.get_state(), "order_rng": rng.getstate(),
                "order": order, "history": history})
        tracker.record(step, rec.pop("loss"), **rec)
    model.save_pretrained(out / "adapter")
    tok.save_pretrained(out / "adapter")
    torch.save(head.state_dict(), out / "value_head.pt")
    k = max(1, len(history) // 4)
    return write_metrics(out, {
        "kind": spec.kind, "resumed_from_step": start, "prompts": len(prompts), "steps": total,
        "score_first": sum(h["score"] for h in history[:k]) / k,
        "score_last": sum(h["score"] for h in history[-k:]) / k,
        "kl_last": history[-1]["kl"], "device": device.type, "dtype": str(dtype).removeprefix("torch."),
    })
