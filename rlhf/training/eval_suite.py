"""Evaluation suite: named held-out sets run against one model (+ adapter), and a forgetting report against the
report of the model before the job (``baseline``). The platform runs it after each job of a campaign with the
campaign's sets, e.g. a task set (generation) and a general set (text).

Per set: ``text`` sets give ``perplexity``; ``generation`` sets give ``completion_perplexity`` of the references
and, on greedy answers, ROUGE-1/2/L, BLEU and BERTScore (MiniLM, see ``metrics.py``). Artifacts:
``eval_report.json`` (``{"model", "adapter", "sets": {name: {metric: value}}}``), ``forgetting.json`` and
``forgetting.txt`` when there is a baseline, ``metrics.json`` (flattened ``<set>_<metric>``).
"""

from __future__ import annotations

import json

from .causal_lm import read_text_set
from .common import Progress, ProgressFn, read_jsonl, start_job, write_metrics
from .forgetting import forgetting_report, format_report
from .metrics import completion_perplexity, generation_scores, text_perplexity
from .models import chat_text, load_policy, load_tokenizer
from .sft import seam
from .specs_lifecycle import EvalSet, EvalSuiteSpec


def evaluate_set(model, tok, s: EvalSet, spec: EvalSuiteSpec, device) -> dict:
    if s.kind == "text":
        texts = read_text_set(s.path, s.max_rows)
        return {"perplexity": text_perplexity(model, tok, texts, spec.max_length, spec.batch_size)}
    rows = read_jsonl(s.path, s.max_rows)
    for i, r in enumerate(rows, 1):
        if not isinstance(r.get("prompt"), str | list) or not isinstance(r.get("response"), str):
            raise ValueError(f"sets: {s.name}: {s.path}: row {i} needs 'prompt' and 'response'")
    prompts = [chat_text(tok, r["prompt"]) for r in rows]
    refs = [r["response"] for r in rows]
    # References joined to prompts as the SFT job joins them (sft.seam), so the scored tokens are the trained ones.
    completions = [seam(p, c) + tok.eos_token for p, c in zip(prompts, refs, strict=True)]
    result = {"completion_perplexity": completion_perplexity(model, tok, prompts, completions, spec.max_length,
                                                             spec.batch_size)}
    result.update(generation_scores(model, tok, prompts, refs, spec.max_new_tokens, device, spec.max_length,
                                    bertscore=spec.bertscore))
    return result


def run(spec: EvalSuiteSpec, progress: ProgressFn | None = None) -> dict:
    out, device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model)
    model = load_policy(spec.model, dtype, adapter=spec.adapter).to(device).eval()
    tracker = Progress(out, progress)
    tracker.start(len(spec.sets))
    sets = {}
    for i, s in enumerate(spec.sets, 1):
        sets[s.name] = evaluate_set(model, tok, s, spec, device)
        tracker.record(i, None, set=s.name)
    report = {"model": spec.model, "adapter": spec.adapter, "sets": sets}
    (out / "eval_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    metrics = {"kind": spec.kind, **{f"{name}_{k}": v for name, m in sets.items() for k, v in m.items()}}
    if spec.baseline:
        baseline = json.loads(open(spec.baseline, encoding="utf-8").read())
        forgetting = forgetting_report(baseline["sets"], sets, spec.threshold)
        (out / "forgetting.json").write_text(json.dumps(forgetting, indent=2) + "\n", encoding="utf-8")
        (out / "forgetting.txt").write_text(format_report(forgetting) + "\n", encoding="utf-8")
        metrics.update({"forgetting_ok": forgetting["ok"], "forgetting_flagged": forgetting["flagged"]})
    return write_metrics(out, metrics)
