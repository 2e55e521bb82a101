// Quality panels on the dashboard: agreement (with 95% intervals), annotator reliability and gold accuracy,
// and the model leaderboard, read from the quality API. Fetched on load and on demand, not on every live
// event (the statistics bootstrap, which costs more than the progress numbers). Text only: textContent.
import { getJSON, pageData } from "./http.js";

const page = pageData();
const api = `/api/v1/campaigns/${page.campaign_id}/`;
const section = document.getElementById("quality");

const fmt = (x, digits = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`);
const interval = (e) => (e.value === null ? "–" : `${fmt(e.value)} [${fmt(e.ci_low)}, ${fmt(e.ci_high)}]`);

function rows(tableId, records, cells) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...records.map((r) => {
    const tr = document.createElement("tr");
    for (const c of cells(r)) tr.append(Object.assign(document.createElement("td"), { textContent: String(c) }));
    return tr;
  }));
}

async function load() {
  const status = document.getElementById("quality-status");
  status.textContent = "Loading…";
  try {
    const [agreement, annotators, board] = await Promise.all([
      getJSON(`${api}quality/agreement/?n_boot=100`),
      getJSON(`${api}quality/annotators/`),
      getJSON(`${api}leaderboard/?n_boot=100`),
    ]);
    const kpi = {
      alpha: interval(agreement.outcome.krippendorff_alpha_nominal),
      fleiss: interval(agreement.outcome.fleiss_kappa),
      percent: interval(agreement.outcome.percent_agreement),
      strength: interval(agreement.strength.krippendorff_alpha_ordinal),
    };
    for (const node of section.querySelectorAll("[data-q]")) node.textContent = kpi[node.dataset.q];
    rows("quality-annotators", annotators, (a) => [
      a.username, a.judgments, a.gold_judged ? `${pct(a.gold_accuracy)} of ${a.gold_judged}` : "–",
      fmt(a.reliability), pct(a.agreement_with_others), a.open_flags, a.paused ? `paused: ${a.pause_reason}` : "",
    ]);
    rows("leaderboard", board.models, (m) => [
      m.name, fmt(m.rating, 0), m.ci_low === null ? "–" : `${fmt(m.ci_low, 0)} – ${fmt(m.ci_high, 0)}`, m.comparisons,
    ]);
    status.textContent = `${agreement.items_with_overlap} items with overlap, ${board.comparisons} model comparisons`;
  } catch (err) {
    status.textContent = `quality numbers unavailable: ${err.message}`;
  }
}

if (section) {
  section.hidden = false;
  document.getElementById("quality-refresh").addEventListener("click", load);
  load();
}
