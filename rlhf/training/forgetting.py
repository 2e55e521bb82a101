"""Forgetting report: compare a model's held-out metrics after a job with the same metrics before it.

Each metric's relative change is oriented so that positive means WORSE (perplexities worse when they rise, every
other metric here - ROUGE, BLEU, BERTScore, accuracy, F1, win-rate - worse when it falls) and flagged when it
worsens by more than ``threshold``. Catastrophic forgetting shows up as a flagged general-set perplexity after
continued pre-training or SFT on narrow data, even when the task set improved.
"""

from __future__ import annotations

LOWER_IS_BETTER = ("perplexity", "loss", "kl_")


def lower_is_better(metric: str) -> bool:
    return any(tag in metric for tag in LOWER_IS_BETTER)


def forgetting_report(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]],
                      threshold: float = 0.05) -> dict:
    """``before`` / ``after``: ``{set name: {metric: value}}``. Returns rows per (set, metric), the flagged ones
    and ``ok`` (nothing flagged). Metrics present on one side only are skipped."""
    rows = []
    for set_name, metrics in after.items():
        for metric, new in sorted(metrics.items()):
            old = before.get(set_name, {}).get(metric)
            if not isinstance(old, int | float) or not isinstance(new, int | float):
                continue
            change = (new - old) / abs(old) if old else float(new != old)
            worse = change if lower_is_better(metric) else -change
            rows.append({"set": set_name, "metric": metric, "before": old, "after": new,
                         "relative_change": change, "worse_by": worse, "flagged": worse > threshold})
    flagged = [f"{r['set']}/{r['metric']}" for r in rows if r["flagged"]]
    return {"threshold": threshold, "rows": rows, "flagged": flagged, "ok": not flagged}


def format_report(report: dict) -> str:
    """A plain-text table for logs and the README."""
    lines = [f"{'set/metric':40} {'before':>10} {'after':>10} {'change':>8}  flag"]
    for r in report["rows"]:
        lines.append(f"{r['set'] + '/' + r['metric']:40} {r['before']:10.4g} {r['after']:10.4g} "
                     f"{r['relative_change']:+8.1%}  {'WORSE' if r['flagged'] else ''}")
    lines.append(f"threshold {report['threshold']:.0%}: " + ("ok" if report["ok"] else
                                                               f"{len(report['flagged'])} flagged"))
    return "\n".join(lines)
