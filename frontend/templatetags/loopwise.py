"""Template helpers: sanitized Markdown, and judgments described in words."""
from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from labeling.rendering import render_markdown

register = template.Library()

STRENGTH_WORDS = {1: "slightly", 2: "clearly", 3: "much"}


@register.filter
def markdown(text: str) -> str:
    # Safe to mark: render_markdown's output has been through the nh3 allowlist.
    return mark_safe(render_markdown(text))  # noqa: S308


@register.simple_tag
def judgment_summary(judgment, labels=None) -> str:
    """'#12 ≻ #13 (clearly)', 'tie', 'both bad' or a ranking such as '#3 = #1 ≻ #2'. ``labels`` maps response
    ids to names (the item page's A, B, C); without it responses are named by id."""
    labels = labels or {}

    def name(rid: int) -> str:
        return labels.get(rid, f"#{rid}")

    if judgment.both_bad:
        return "both bad"
    if judgment.kind == "pairwise" and judgment.tie:
        return "tie"
    groups = judgment.ranking or []
    text = " ≻ ".join(" = ".join(name(r) for r in group) for group in groups)
    if judgment.strength:
        text += f" ({STRENGTH_WORDS.get(judgment.strength, judgment.strength)})"
    return text


@register.filter
def seconds(ms) -> str:
    return "" if ms is None else f"{ms / 1000:.1f} s"


@register.filter
def get_label(labels: dict, rid) -> str:
    return labels.get(rid, f"#{rid}")
