// Live run rows (runs page, run page, the dashboard's training panel): rows are server-rendered with
// data-run="<id>"; progress events and polled data update their [data-field] cells in place. Text only.
const fmtLoss = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(4));
const fmtEta = (x) => (x === null || x === undefined ? "–" : `${Math.round(x)} s`);

function cell(row, field) {
  return row.querySelector(`[data-field="${field}"]`);
}

// r: {id, status?, step, total, loss, eta_s}
export function applyRun(r) {
  const found = document.querySelectorAll(`tr[data-run="${Number(r.id)}"]`);
  for (const row of found) {
    if (r.status) {
      const badge = cell(row, "status").querySelector(".badge") || cell(row, "status");
      badge.textContent = r.status;
      badge.className = `badge run-${r.status}`;
    }
    const total = Number(r.total) || 0;
    const step = r.status === "succeeded" ? Math.max(Number(r.step) || 0, total) : Number(r.step) || 0;
    const bar = cell(row, "bar");
    bar.max = Math.max(total, 1);
    bar.value = Math.min(step, bar.max);
    cell(row, "steps").textContent = `${step} / ${total || "?"}`;
    cell(row, "loss").textContent = fmtLoss(r.loss);
    cell(row, "eta").textContent = r.status && r.status !== "running" ? "–" : fmtEta(r.eta_s);
    row.dataset.step = String(step);
  }
  return found.length > 0;
}

// The payload of a run.progress event (rlhf.services.runs.run_record_progress).
export function applyProgress(p) {
  return applyRun({ id: p.run, status: "running", step: p.progress_step, total: p.progress_total, loss: p.loss,
    eta_s: p.eta_s });
}

export function applyLoop(loop) {
  if (!loop) return;
  const set = (key, text) => {
    const node = document.querySelector(`[data-loop="${key}"]`);
    if (node && text !== undefined && text !== null) node.textContent = text;
  };
  set("enabled", loop.enabled ? "on" : "off");
  set("policy", loop.current_policy || "the base model");
  if (loop.iteration) set("stage", loop.iteration.stage_label);
}

// data: {runs: [...], loop}. Returns the ids of runs that have no row on this page (new runs).
export function applyRuns(data) {
  const unknown = [];
  for (const r of data.runs) if (!applyRun({ ...r })) unknown.push(r.id);
  applyLoop(data.loop);
  return unknown;
}
