"""Line charts as plain data for server-rendered SVG (``frontend/_line_chart.html``): no chart library, no
script, no inline style (series colours are CSS classes), so the pages keep their strict CSP. The numbers come
from run progress files, which a job writes: anything that is not a finite number is dropped, never drawn."""
from __future__ import annotations

import math

# A curve of a few hundred points reads the same as one of thousands and keeps the page light.
MAX_POINTS = 300
WIDTH, HEIGHT = 560, 220
PAD_L, PAD_R, PAD_T, PAD_B = 56, 12, 12, 28


def _finite(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def thin(points: list[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    """Every k-th point (the last one always kept), at most ``limit`` of them."""
    if len(points) <= limit:
        return points
    step = math.ceil(len(points) / limit)
    kept = points[::step]
    return kept if kept[-1] == points[-1] else [*kept, points[-1]]


def _fmt(value: float) -> str:
    """Short axis labels (they must fit the left margin): 0.00012 -> 1.2e-04, 176000 -> 176k."""
    size = abs(value)
    if value == 0:
        return "0"
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e3:
        return f"{value / 1e3:.3g}k"
    if size < 0.01:
        return f"{value:.1e}"
    return f"{value:.3g}"


def line_chart(title: str, series: list[dict], *, width: int = WIDTH, height: int = HEIGHT) -> dict:
    """``series``: ``[{"name", "points": [(x, y), ...]}]`` (x: the step). Returns what the template draws:
    each series' polyline ``points`` string and colour index, axis ticks and their labels, in SVG units."""
    clean = []
    for index, s in enumerate(series):
        pts = [(float(x), y) for x, y in ((_finite(p[0]), _finite(p[1])) for p in s["points"])
               if x is not None and y is not None]
        clean.append({"name": s["name"], "index": index % 4, "points": thin(pts)})
    every = [p for s in clean for p in s["points"]]
    chart = {"title": title, "width": width, "height": height, "series": clean, "empty": not every,
             "x0": PAD_L, "x1": width - PAD_R, "y0": PAD_T, "y1": height - PAD_B, "yticks": [], "xticks": []}
    if not every:
        return chart
    xmin, xmax = min(p[0] for p in every), max(p[0] for p in every)
    ymin, ymax = min(p[1] for p in every), max(p[1] for p in every)
    if xmax == xmin:
        xmin, xmax = xmin - 1, xmax + 1
    if ymax == ymin:
        ymin, ymax = ymin - (abs(ymin) * 0.1 or 1), ymax + (abs(ymax) * 0.1 or 1)

    def sx(x: float) -> float:
        return PAD_L + (x - xmin) / (xmax - xmin) * (width - PAD_L - PAD_R)

    def sy(y: float) -> float:
        return height - PAD_B - (y - ymin) / (ymax - ymin) * (height - PAD_T - PAD_B)

    for s in clean:
        s["path"] = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s["points"])
        s["last"] = s["points"][-1][1] if s["points"] else None
        s["single"] = len(s["points"]) == 1
        if s["single"]:
            s["cx"], s["cy"] = round(sx(s["points"][0][0]), 1), round(sy(s["points"][0][1]), 1)
    chart["yticks"] = [{"y": round(sy(v), 1), "label": _fmt(v)} for v in (ymin, (ymin + ymax) / 2, ymax)]
    chart["xticks"] = [{"x": round(sx(v), 1), "label": _fmt(round(v))} for v in (xmin, xmax)]
    chart["summary"] = "; ".join(
        f"{s['name']}: {len(s['points'])} points, last {_fmt(s['last'])}" for s in clean if s["points"]
    )
    return chart


def interval_chart(title: str, rows: list[dict], *, width: int = WIDTH, row_height: int = 26) -> dict:
    """Win-rates with their confidence intervals on a 0..1 axis, a reference line at 0.5 (no preference).
    ``rows``: ``[{"name", "value", "low", "high"}]``; rows without a finite value are left out."""
    pad_l, pad_r = 170, 16
    kept = [r for r in rows if _finite(r.get("value")) is not None]
    height = 30 + max(1, len(kept)) * row_height

    def sx(v: float) -> float:
        return pad_l + max(0.0, min(1.0, v)) * (width - pad_l - pad_r)

    out = []
    for i, r in enumerate(kept):
        low, high = _finite(r.get("low")), _finite(r.get("high"))
        out.append({
            "name": r["name"], "y": 10 + i * row_height + row_height / 2, "x": round(sx(r["value"]), 1),
            "x_low": round(sx(low if low is not None else r["value"]), 1),
            "x_high": round(sx(high if high is not None else r["value"]), 1),
            "label": f"{r['value']:.2f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""),
        })
    return {"title": title, "width": width, "height": height, "rows": out, "empty": not out, "x0": pad_l,
            "x1": width - pad_r, "mid": round(sx(0.5), 1), "axis_y": height - 14,
            "ticks": [{"x": round(sx(v), 1), "label": f"{v:g}"} for v in (0, 0.25, 0.5, 0.75, 1)]}
