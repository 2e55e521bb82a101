"""Reads for the training pages (runs list, run detail, run comparison, reward models, policies, the
dashboard's training panel), on top of ``rlhf.selectors``. A list costs a fixed number of queries whatever the
number of runs. Callers have already checked the user's role in the campaign; a run, policy or reward model
of another campaign is not found.

Everything a job wrote (spec strings, metric names, log lines, model labels) is data for autoescaped
templates or JSON, never markup."""
from __future__ import annotations

import json
import math

from django.db.models import QuerySet
from django.utils import timezone

from labeling.errors import NotFound, ValidationError
from labeling.models import Campaign
from rlhf import selectors as rsel
from rlhf.models import PolicyVersion, RewardModelVersion, TrainingRun
from rlhf.services.runs import run_dir

from .charts import interval_chart, line_chart

COMPARE_MIN, COMPARE_MAX = 2, 4
# Progress-file fields that are bookkeeping, not curves worth drawing.
# steps/s is left out too: its first point (a few ms after start) dwarfs the rest, and the list shows speed.
NOT_CURVES = {"step", "total", "eta_s", "epoch", "steps_per_s"}
# Never read more than this much of a progress file: a runaway job must not stall a page.
HISTORY_MAX_BYTES = 4 << 20
# Spec fields that differ between any two runs by construction: highlighting them would hide real differences.
SPEC_ALWAYS_DIFFERENT = {"output_dir"}
ACTIVE = (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)
# Human evaluations on the runs page: each result is computed from its judgments (bootstrap included).
HUMAN_EVALS_SHOWN, HUMAN_EVAL_BOOT = 10, 500


def _runs(campaign: Campaign) -> QuerySet[TrainingRun]:
    # The list never needs the long texts; the outputs come in the same query (reverse one-to-one joins).
    return (rsel.run_list(campaign=campaign)
            .select_related("policy__run", "policy_version", "reward_version")
            .defer("log_tail", "error", "artifacts", "options"))


def _percent(run: TrainingRun) -> int | None:
    if run.status == TrainingRun.Status.SUCCEEDED:
        return 100
    if not run.progress_total:
        return None
    return min(100, round(100 * run.progress_step / run.progress_total))


def _output(run: TrainingRun) -> dict | None:
    for attr, kind in (("policy_version", "policy"), ("reward_version", "reward model")):
        try:
            version = getattr(run, attr)
        except (PolicyVersion.DoesNotExist, RewardModelVersion.DoesNotExist):
            continue
        if version is not None:
            return {"kind": kind, "id": version.pk, "label": version.label}
    return None


def run_row(run: TrainingRun) -> dict:
    """One run as the list shows it (JSON-ready: the live updates send the same shape)."""
    parent = run.policy
    return {
        "id": run.pk, "kind": run.kind, "kind_label": run.get_kind_display(), "status": run.status,
        "step": run.progress_step, "total": run.progress_total, "percent": _percent(run), "loss": run.loss,
        "eta_s": run.eta_s if run.status == TrainingRun.Status.RUNNING else None,
        "created_at": run.created_at.isoformat(), "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "round": run.round.number if run.round_id else None,
        "parent": {"policy_id": parent.pk, "policy": parent.label, "run": parent.run_id} if parent else None,
        "output": _output(run),
    }


def run_rows(*, campaign: Campaign, limit: int = 200) -> list[dict]:
    return [run_row(r) for r in _runs(campaign)[:limit]]


def loop_summary(*, campaign: Campaign) -> dict | None:
    """The loop's state in words: on or off, the policy it generates from, the newest iteration's stage."""
    config = rsel.loop_config_get(campaign=campaign)
    if config is None:
        return None
    latest = rsel.iteration_list(campaign=campaign).select_related("round").first()
    return {
        "enabled": config.enabled, "algorithm": config.get_algorithm_display(),
        "current_policy": config.current_policy.label if config.current_policy_id else None,
        "iteration": None if latest is None else {
            "id": latest.pk, "round": latest.round.number, "stage": latest.stage,
            "stage_label": latest.get_stage_display(), "error": latest.error[-500:],
        },
    }


def runs_live(*, campaign: Campaign) -> dict:
    return {"generated_at": timezone.now().isoformat(), "runs": run_rows(campaign=campaign),
            "loop": loop_summary(campaign=campaign)}


def training_panel(*, campaign: Campaign, limit: int = 5) -> dict:
    """The dashboard's training panel: runs still queued or running, else the latest ones, and the loop."""
    active = list(_runs(campaign).filter(status__in=ACTIVE)[:limit])
    runs = active or list(_runs(campaign)[:limit])
    return {"generated_at": timezone.now().isoformat(), "runs": [run_row(r) for r in runs],
            "loop": loop_summary(campaign=campaign)}


# --- one run ----------------------------------------------------------------------------------------------


def run_get(*, user, campaign: Campaign, run_id: int) -> TrainingRun:
    try:
        run = rsel.run_get(user=user, run_id=run_id)
    except NotFound:
        run = None
    if run is None or run.campaign_id != campaign.pk:
        raise NotFound(f"run {run_id} not found in campaign {campaign.pk}")
    return run


def run_history(run: TrainingRun) -> list[dict]:
    """The run's progress file (one JSON object per logged step, written by the job); unreadable lines are
    skipped. The tail is kept when the file is larger than the read limit."""
    path = run_dir(run.pk) / "progress.jsonl"
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - HISTORY_MAX_BYTES))
            raw = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    rows = []
    for line in raw.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def curves(history: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """metric name -> [(step, value)] by step, loss first, then the others by name. A run that resumed after
    its worker died logs some steps twice: the later record of a step wins, so the curve never runs back."""
    by_step: dict[str, dict[float, float]] = {}
    for i, row in enumerate(history):
        step = _number(row.get("step"))
        step = float(i + 1) if step is None else step
        for key, value in row.items():
            number = _number(value)
            if number is not None and isinstance(key, str) and key not in NOT_CURVES:
                by_step.setdefault(key[:100], {})[step] = number
    out = {name: sorted(points.items()) for name, points in by_step.items()}
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != "loss", kv[0])))


def flatten(value, prefix: str = "") -> dict[str, str]:
    """Nested dicts as dotted keys; lists and scalars as compact JSON text (for tables and diffs)."""
    if isinstance(value, dict) and (value or not prefix):
        out: dict[str, str] = {}
        for key in sorted(value, key=str):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str, sort_keys=True)
    return {prefix or "value": text}


def _artifact_rows(run: TrainingRun) -> list[dict]:
    rows = []
    for a in run.artifacts or []:
        if isinstance(a, dict):
            rows.append({"path": str(a.get("path", "")), "bytes": a.get("bytes"), "sha256": str(a.get("sha256", ""))})
    return rows


def run_detail(*, user, campaign: Campaign, run_id: int) -> dict:
    run = run_get(user=user, campaign=campaign, run_id=run_id)
    series = curves(run_history(run))
    reward_models = []
    if run.kind == TrainingRun.Kind.REWARD:
        reward_models = [reward_model_row(v) for v in RewardModelVersion.objects.filter(run=run).select_related("round")]
    return {
        "run": run, "row": run_row(run), "spec": flatten(run.spec or {}), "metrics": flatten(run.metrics or {}),
        "artifacts": _artifact_rows(run), "reward_models": reward_models,
        "charts": [line_chart(name, [{"name": f"run {run.pk}", "points": pts}]) for name, pts in series.items()],
    }


# --- comparison -------------------------------------------------------------------------------------------


def parse_run_ids(values: list[str]) -> list[int]:
    """The compare form's ``run`` values: 2 to 4 distinct run ids, oldest run first."""
    ids: list[int] = []
    for value in values:
        if not value.strip().isdigit():
            raise ValidationError(f"run: {value[:40]!r} is not a run id", field="run")
        if int(value) not in ids:
            ids.append(int(value))
    if not COMPARE_MIN <= len(ids) <= COMPARE_MAX:
        raise ValidationError(
            f"run: choose {COMPARE_MIN} to {COMPARE_MAX} runs to compare (got {len(ids)})", field="run")
    return sorted(ids)


def _table(columns: list[dict[str, str]], skip_highlight: frozenset = frozenset()) -> list[dict]:
    keys = sorted({k for c in columns for k in c})
    rows = []
    for key in keys:
        values = [c.get(key) for c in columns]
        rows.append({"key": key, "values": values, "differs": key not in skip_highlight and len(set(values)) > 1})
    return rows


def runs_compare(*, campaign: Campaign, run_ids: list[int]) -> dict:
    """Side by side: spec fields (those that differ flagged), final metrics, and one chart per metric with a
    curve per run."""
    found = {r.pk: r for r in rsel.run_list(campaign=campaign).filter(pk__in=run_ids)}
    missing = [i for i in run_ids if i not in found]
    if missing:
        raise NotFound(f"run: {', '.join(map(str, missing))} not found in campaign {campaign.pk}")
    runs = [found[i] for i in run_ids]
    histories = {r.pk: curves(run_history(r)) for r in runs}
    names = sorted({n for h in histories.values() for n in h}, key=lambda n: (n != "loss", n))
    charts = [
        line_chart(name, [{"name": f"run {r.pk} ({r.kind})", "points": histories[r.pk].get(name, [])} for r in runs])
        for name in names
    ]
    spec = _table([flatten(r.spec or {}) for r in runs], frozenset(SPEC_ALWAYS_DIFFERENT))
    return {
        "runs": [{"run": r, "row": run_row(r), "index": i % 4} for i, r in enumerate(runs)],
        "spec": spec, "differing": sum(row["differs"] for row in spec),
        "metrics": _table([flatten(r.metrics or {}) for r in runs]), "charts": charts,
    }


# --- reward models and policies ---------------------------------------------------------------------------


def _estimate(entry) -> tuple[float | None, tuple[float, float] | None]:
    """An agreement statistic as stored by the quality selectors: ``{"value", "ci_low", "ci_high"}`` (or a bare
    number) -> (value, (low, high) or None)."""
    if not isinstance(entry, dict):
        return _number(entry), None
    low, high = _number(entry.get("ci_low")), _number(entry.get("ci_high"))
    return _number(entry.get("value")), (low, high) if low is not None and high is not None else None


def reward_model_row(version: RewardModelVersion) -> dict:
    """Held-out accuracy beside the human agreement ceiling of the data it learned from. An accuracy above the
    ceiling is flagged: people agree on only so much, so beating them points at leakage or too little overlap."""
    metrics = version.metrics or {}
    ceiling = metrics.get("human_agreement") or {}
    accuracy = _number(metrics.get("eval_accuracy_after"))
    human, human_ci = _estimate(ceiling.get("percent_agreement"))
    alpha, _ = _estimate(ceiling.get("krippendorff_alpha_nominal"))
    return {
        "id": version.pk, "label": version.label, "run": version.run_id,
        "round": version.round.number if version.round_id else None,
        "accuracy": accuracy, "accuracy_before": _number(metrics.get("eval_accuracy_before")),
        "eval_pairs": metrics.get("eval_pairs"), "ceiling": human, "ceiling_ci": human_ci, "alpha": alpha,
        "items_with_overlap": ceiling.get("items_with_overlap"),
        "above_ceiling": accuracy is not None and human is not None and accuracy > human,
    }


def reward_model_rows(*, campaign: Campaign) -> list[dict]:
    return [reward_model_row(v) for v in rsel.reward_model_list(campaign=campaign).order_by("-number")]


def _win_rates(evaluation: dict) -> list[dict]:
    out = []
    for key, name in (("judge", "judge"), ("reward_model", "reward model")):
        entry = evaluation.get(key)
        if isinstance(entry, dict) and _number(entry.get("win_rate")) is not None:
            out.append({"by": name, "win_rate": entry["win_rate"], "ci_low": _number(entry.get("ci_low")),
                        "ci_high": _number(entry.get("ci_high")), "n": entry.get("n")})
    return out


def policy_rows(*, campaign: Campaign) -> list[dict]:
    """The campaign's policy versions, newest first, each with its lineage (itself back to version 0), worked
    out from one query: every ancestor of a campaign's policy is in the campaign."""
    policies = list(rsel.policy_list(campaign=campaign).order_by("-number"))
    by_id = {p.pk: p for p in policies}
    rows = []
    for p in policies:
        chain, seen, node = [], set(), p
        while node is not None and node.pk not in seen:
            chain.append({"id": node.pk, "label": node.label, "number": node.number})
            seen.add(node.pk)
            node = by_id.get(node.parent_id)
        evaluation = (p.metrics or {}).get("evaluation") or {}
        gate = evaluation.get("gate") if isinstance(evaluation.get("gate"), dict) else None
        rows.append({
            "id": p.pk, "label": p.label, "number": p.number, "base": p.base.name,
            "parent": {"id": p.parent_id, "label": p.parent.label} if p.parent_id else None,
            "run": {"id": p.run_id, "kind": p.run.kind, "status": p.run.status} if p.run_id else None,
            "round": p.round.number if p.round_id else None, "promoted": p.promoted, "lineage": chain,
            "win_rates": _win_rates(evaluation), "kl": _number(evaluation.get("kl_to_parent")),
            "gate": {"passed": bool(gate.get("passed")), "reason": str(gate.get("reason", ""))} if gate else None,
        })
    return rows


def human_eval_rows(*, campaign: Campaign, limit: int = HUMAN_EVALS_SHOWN) -> dict:
    """The latest human evaluations (B against A on held-out prompts) with their win-rate and 95% interval,
    and those intervals as one chart. Each result reads its round's judgments (a few queries), so the page
    shows the newest ``limit`` and says how many there are in all."""
    from rlhf.services.human_eval import human_eval_list, human_eval_result

    evaluations = human_eval_list(campaign=campaign)
    shown = list(evaluations[:limit])
    rows = []
    for he in shown:
        result = human_eval_result(human_eval=he, n_boot=HUMAN_EVAL_BOOT)
        rows.append({"id": he.pk, "round": he.round.number, "status": he.get_status_display(),
                     "model_a": he.model_a.label, "model_b": he.model_b.label, "error": he.error[-500:],
                     **{k: result.get(k) for k in ("win_rate", "ci_low", "ci_high", "n", "ties", "both_bad",
                                                   "judged_items", "items", "judgments")},
                     "per_annotator": result.get("per_annotator") or []})
    chart = interval_chart("Win-rate of B over A (95% CI; 0.5: no preference)", [
        {"name": f"{r['model_b']} vs {r['model_a']}", "value": r["win_rate"], "low": r["ci_low"],
         "high": r["ci_high"]} for r in rows])
    total = evaluations.count() if len(shown) == limit else len(shown)
    return {"rows": rows, "chart": chart, "total": total}


def runs_page(*, campaign: Campaign) -> dict:
    return {"runs": run_rows(campaign=campaign), "reward_models": reward_model_rows(campaign=campaign),
            "policies": policy_rows(campaign=campaign), "loop": loop_summary(campaign=campaign),
            "human_evals": human_eval_rows(campaign=campaign), "compare_range": (COMPARE_MIN, COMPARE_MAX)}
