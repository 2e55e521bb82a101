// Tiny inline-SVG charts (no library): a cumulative line and a horizontal bar chart. Colours and sizes are
// presentation attributes, not style attributes, so the page's CSP (no inline styles) holds.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function frame(width, height, label) {
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  root.append(svg("title", {}, label));
  return root;
}

const fmtTime = (d) => d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

// points: [[iso time, count in bucket], ...]; draws the running total.
export function cumulativeChart(container, points, { width = 560, height = 220 } = {}) {
  const pad = { l: 44, r: 12, t: 12, b: 28 };
  let total = 0;
  const series = points.map(([at, n]) => ({ t: new Date(at).getTime(), v: (total += n) }));
  const root = frame(width, height, `Cumulative judgments: ${total}`);
  if (series.length === 0) {
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", fill: "#4f5b6b" }, "No judgments yet"));
    container.replaceChildren(root);
    return;
  }
  if (series.length === 1) series.unshift({ t: series[0].t - 60_000, v: 0 });
  const t0 = series[0].t, t1 = Math.max(series[series.length - 1].t, t0 + 1);
  const vmax = Math.max(1, total);
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / vmax) * (height - pad.t - pad.b);
  for (const v of [0, Math.round(vmax / 2), vmax]) {
    root.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), stroke: "#d5dbe3" }));
    root.append(svg("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#4f5b6b" }, v));
  }
  root.append(svg("text", { x: pad.l, y: height - 8, "font-size": 11, fill: "#4f5b6b" }, fmtTime(new Date(t0))));
  root.append(svg("text", { x: width - pad.r, y: height - 8, "font-size": 11, fill: "#4f5b6b", "text-anchor": "end" }, fmtTime(new Date(t1))));
  const d = series.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  root.append(svg("path", { d: `${d} L${x(t1)},${y(0)} L${x(t0)},${y(0)} Z`, fill: "#e6eefb" }));
  root.append(svg("path", { d, fill: "none", stroke: "#1f5fbf", "stroke-width": 2.5 }));
  container.replaceChildren(root);
}

// rows: [{label, value, secondary}]: a bar per row, `value` (in all) and `secondary` (last hour) overlaid.
export function barChart(container, rows, { width = 560, barHeight = 22 } = {}) {
  const pad = { l: 110, r: 48, t: 8, b: 8 };
  const height = pad.t + pad.b + Math.max(1, rows.length) * (barHeight + 8);
  const root = frame(width, height, "Judgments per annotator");
  const vmax = Math.max(1, ...rows.map((r) => r.value));
  const w = (v) => (v / vmax) * (width - pad.l - pad.r);
  rows.forEach((r, i) => {
    const top = pad.t + i * (barHeight + 8);
    root.append(svg("text", { x: pad.l - 8, y: top + barHeight * 0.7, "text-anchor": "end", "font-size": 12, fill: "#1c2430" }, r.label));
    root.append(svg("rect", { x: pad.l, y: top, width: Math.max(1, w(r.value)), height: barHeight, fill: "#b7cbee", rx: 3 }));
    root.append(svg("rect", { x: pad.l, y: top + 5, width: w(r.secondary), height: barHeight - 10, fill: "#1f5fbf", rx: 2 }));
    root.append(svg("text", { x: pad.l + w(r.value) + 6, y: top + barHeight * 0.7, "font-size": 12, fill: "#1c2430" }, `${r.value} (${r.secondary}/h)`));
  });
  if (!rows.length) root.append(svg("text", { x: width / 2, y: height / 2 + 4, "text-anchor": "middle", fill: "#4f5b6b" }, "No annotators yet"));
  container.replaceChildren(root);
}
