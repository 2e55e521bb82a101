"""Colour contrast of the UI's palette, computed from the CSS variables in app.css (WCAG 2.x relative
luminance), against AA: 4.5:1 for text, 3:1 for the focus ring and other non-text indicators."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend" / "app.css"

# (foreground, background, where the pair is used). Names are CSS variables; literals are colours used as is.
TEXT_PAIRS = [
    ("--ink", "--bg", "body text"),
    ("--ink", "--panel", "cards, prompt, responses"),
    ("--muted", "--bg", "meta and help text on the page"),
    ("--muted", "--panel", "section labels, table headers"),
    ("--accent", "--bg", "links"),
    ("--accent", "--panel", "links in cards, link buttons"),
    ("--accent-ink", "--accent", "primary buttons, pressed choices"),
    ("#fff", "#174a96", "keys inside primary buttons, hovered primary"),
    ("--ink", "--accent-soft", "hovered buttons, role badges"),
    ("--good", "--good-soft", "live badge"),
    ("--bad", "--bad-soft", "error banner"),
    ("--bad", "--panel", "form errors"),
    ("--tie", "--tie-soft", "polling badge, tied ranks"),
]
INDICATOR_PAIRS = [
    ("--focus", "--bg", "focus ring on the page (outline-offset leaves a gap of page around the control)"),
    ("--focus", "--panel", "focus ring inside cards and the action bar"),
    ("--accent", "--bg", "pressed choice against the page"),
]


def variables() -> dict[str, str]:
    root = re.search(r":root\s*{([^}]*)}", CSS.read_text(encoding="utf-8")).group(1)
    return dict(re.findall(r"(--[\w-]+)\s*:\s*(#[0-9a-fA-F]{3,6})\b", root))


def rgb(colour: str) -> tuple[float, ...]:
    hexdigits = colour.lstrip("#")
    if len(hexdigits) == 3:
        hexdigits = "".join(c * 2 for c in hexdigits)
    return tuple(int(hexdigits[i:i + 2], 16) / 255 for i in (0, 2, 4))


def luminance(colour: str) -> float:
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb(colour)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def resolve(name: str, palette: dict[str, str]) -> str:
    return palette[name] if name.startswith("--") else name


def test_contrast_formula_matches_known_values():
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic just-failing grey


@pytest.mark.parametrize(("fg", "bg", "where"), TEXT_PAIRS, ids=[p[2] for p in TEXT_PAIRS])
def test_text_colours_meet_wcag_aa(fg, bg, where):
    palette = variables()
    ratio = contrast(resolve(fg, palette), resolve(bg, palette))
    assert ratio >= 4.5, f"{where}: {fg} on {bg} is {ratio:.2f}:1, below 4.5:1"


@pytest.mark.parametrize(("fg", "bg", "where"), INDICATOR_PAIRS, ids=[p[2] for p in INDICATOR_PAIRS])
def test_indicators_meet_non_text_contrast(fg, bg, where):
    palette = variables()
    ratio = contrast(resolve(fg, palette), resolve(bg, palette))
    assert ratio >= 3.0, f"{where}: {fg} against {bg} is {ratio:.2f}:1, below 3:1"
