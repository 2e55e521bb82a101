// The runs pages: progress pushed over the campaign's WebSocket (run.progress events) lands in the rows at
// once; other run and loop events (started, finished, new round) re-read the page's data; polling when the
// socket is down. The compare form says how many runs are ticked.
import { getJSON, pageData } from "./http.js";
import { connectLive } from "./live.js";
import { applyProgress, applyRuns } from "./training.js";

const page = pageData();
const live = document.getElementById("live");
const newRuns = document.getElementById("new-runs");
let refreshTimer = null;
let control = null;

async function refresh() {
  try {
    const unknown = applyRuns(await getJSON(page.data_url));
    // The detail page shows one run: other runs are not "new" there.
    if (newRuns && unknown.length) newRuns.hidden = false;
  } catch (err) {
    if (control) control.setMode(live.dataset.mode, `update failed: ${err.message}`);
  }
}

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 150);
}

function onEvent({ event, payload }) {
  if (event === "run.progress") {
    if (!applyProgress(payload) && newRuns) newRuns.hidden = false;
  } else if (event.startsWith("run.") || event.startsWith("loop.")) {
    refreshSoon();
  }
}

control = connectLive({ wsPath: page.ws_path, status: live, onEvent, refresh });

const form = document.getElementById("compare-form");
if (form) {
  const button = document.getElementById("compare-button");
  const boxes = () => [...document.querySelectorAll('input[name="run"][form="compare-form"]')];
  const update = () => {
    const n = boxes().filter((b) => b.checked).length;
    button.textContent = n ? `Compare selected runs (${n})` : "Compare selected runs";
  };
  document.addEventListener("change", (e) => { if (e.target.matches('input[name="run"]')) update(); });
  update();
}
