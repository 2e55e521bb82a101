"""Knowledge distillation: a smaller student learns a teacher policy's next-token distribution with TRL 1.16's
``DistillationTrainer`` (on-policy distillation, Agarwal et al. 2024: the student samples completions for the
prompts and minimises a generalised JSD to the teacher's logits on them; ``beta=0`` is forward KL).

The student is ``spec.student`` or, by default, a freshly initialised smaller copy of the teacher's architecture
(fewer layers, narrower) sharing the teacher's tokenizer, which the trainer requires (same vocabulary).

Reported on held-out prompts, before and after: the forward KL from teacher to student on the teacher's own greedy
completions (how well the student imitates), the mean reward of each policy's greedy answers under the spec's
reward model or function, and the student's win-rate against the teacher (ties count one half, bootstrap CI).
Artifacts: ``model/`` (the student, a plain folder) or ``adapter/``, ``metrics.json``, ``progress.jsonl``.
"""

from __future__ import annotations

import torch
from datasets import Dataset
from trl import DistillationConfig, DistillationTrainer

from . import checkpoints
from .adapters import save_trained, trainable_params, wrap
from .common import (
    Progress,
    ProgressCallback,
    ProgressFn,
    loss_span,
    quiet,
    read_prompts,
    start_job,
    training_fields,
    write_metrics,
)
from .evaluate import bootstrap_ci
from .generate import encode_prompts, generation_kwargs, sample
from .models import chat_text, load_policy, load_tokenizer
from .rewards import build_reward
from .specs_lifecycle import AdaptSpec, DistillSpec


def build_student(spec: DistillSpec, teacher, dtype):
    """A smaller model of the teacher's family: ``student_layers`` layers, ``student_hidden`` wide."""
    from transformers import AutoModelForCausalLM

    if spec.student:
        return load_policy(spec.student, dtype)
    cfg = teacher.config.to_dict()
    hidden = spec.student_hidden or max(8, teacher.config.hidden_size // 2)
    heads = teacher.config.num_attention_heads
    while hidden % heads:
        heads //= 2
    cfg.update(num_hidden_layers=spec.student_layers, hidden_size=hidden, num_attention_heads=heads,
               num_key_value_heads=heads, head_dim=hidden // heads,
               intermediate_size=teacher.config.intermediate_size * hidden // teacher.config.hidden_size)
    config = type(teacher.config).from_dict(cfg)
    torch.manual_seed(spec.seed)
    return AutoModelForCausalLM.from_config(config, dtype=dtype)


def greedy(model, tok, prompts: list, max_new_tokens: int, device) -> list[str]:
    encoded = encode_prompts(tok, prompts, 512)
    kwargs = generation_kwargs(tok, 0.0, 1.0, max_new_tokens)
    out: list[str] = []
    for i in range(0, len(encoded), 16):
        out.extend(text for text, _ in sample(model, tok, encoded[i : i + 16], kwargs, device))
    return out


@torch.no_grad()
def teacher_kl(teacher, student, tok, prompts: list, completions: list[str], device) -> float:
    """Mean per-token KL(teacher || student) over the completion tokens."""
    student.eval()
    total, count = 0.0, 0
    for p, c in zip(prompts, completions, strict=True):
        text = chat_text(tok, p)
        p_ids = tok(text, add_special_tokens=False)["input_ids"]
        ids = p_ids + tok(c + tok.eos_token, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids], device=device)
        lt = torch.log_softmax(teacher(input_ids=x).logits[0, len(p_ids) - 1 : -1].float(), -1)
        ls = torch.log_softmax(student(input_ids=x).logits[0, -(len(ids) - len(p_ids)) - 1 : -1].float(), -1)
        total += (lt.exp() * (lt - ls)).sum().item()
        count += len(ids) - len(p_ids)
    return total / max(count, 1)


def compare(teacher, student, tok, prompts, teacher_answers, reward_fn, spec, device) -> dict:
    student_answers = greedy(student, tok, prompts, spec.max_new_tokens, device)
    rs = reward_fn(prompts=prompts, completions=student_answers)
    rt = reward_fn(prompts=prompts, completions=teacher_answers)
    outcomes = [1.0 if s > t else 0.5 if s == t else 0.0 for s, t in zip(rs, rt, strict=True)]
    low, high = bootstrap_ci(outcomes, seed=spec.seed)
    return {"win_rate_vs_teacher": sum(outcomes) / len(outcomes), "win_rate_ci_low": low, "win_rate_ci_high": high,
            "student_reward": sum(rs) / len(rs), "teacher_reward": sum(rt) / len(rt),
            "kl_teacher_student": teacher_kl(teacher, student, tok, prompts, teacher_answers, device)}


def run(spec: DistillSpec, progress: ProgressFn | None = None) -> dict:
    out, device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model, padding_side="left")  # the trainer generates: prompts padded on the left
    teacher = load_policy(spec.model, dtype).to(device).eval()
    prompts = read_prompts(spec.prompts_file, spec.max_train_rows)
    eval_prompts = read_prompts(spec.eval_prompts_file or spec.prompts_file, spec.max_eval_prompts)
    reward_fn = build_reward(spec.reward_model, spec.reward_function, device, spec.max_length)
    adapt = AdaptSpec(output_dir=spec.output_dir, model=spec.model, peft=spec.peft, lora=spec.lora)
    student = wrap(build_student(spec, teacher, dtype), adapt, "CAUSAL_LM").to(device)
    teacher_answers = greedy(teacher, tok, eval_prompts, spec.max_new_tokens, device)
    before = compare(teacher, student, tok, eval_prompts, teacher_answers, reward_fn, spec, device)

    trainable, total = trainable_params(student)
    args = DistillationConfig(**training_fields(spec, device, dtype, total), max_completion_length=spec.max_new_tokens,
                              temperature=spec.temperature, beta=spec.beta)
    trainer = quiet(DistillationTrainer(model=student, teacher_model=teacher, args=args, processing_class=tok,
                                        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                                        callbacks=[ProgressCallback(Progress(out, progress))]))
    resumed = checkpoints.train(trainer, spec)  # from a checkpoint when a worker died mid-run
    loss_first, loss_last = loss_span(trainer.state.log_history)
    after = compare(teacher, trainer.model, tok, eval_prompts, teacher_answers, reward_fn, spec, device)
    tok.padding_side = "right"
    saved = save_trained(trainer.model, tok, out, adapt)

    return write_metrics(out, {
        "kind": spec.kind, "resumed_from_step": resumed, "student_params": total, "student_trainable_params": trainable,
        "teacher_params": sum(p.numel() for p in teacher.parameters()), "prompts": len(prompts),
        "eval_prompts": len(eval_prompts), "steps": trainer.state.global_step, "loss_first": loss_first,
        "loss_last": loss_last, **{f"{k}_before": v for k, v in before.items()},
        **{f"{k}_after": v for k, v in after.items()},
        **{f"{name}_dir": path for name, path in saved.items()}, "device": device.type,
    })
