// Live campaign dashboard: numbers and charts from /dashboard/data/, refreshed when the campaign's WebSocket
// reports an event (a judgment recorded, an item leased...). When the socket fails, it polls instead and keeps
// trying to reconnect.
import { barChart, cumulativeChart } from "./charts.js";
import { getJSON, pageData } from "./http.js";
import { connectLive } from "./live.js";
import { applyProgress, applyRuns } from "./training.js";

const page = pageData();
const live = document.getElementById("live");
let refreshTimer = null;
let connection = null;

function render(data) {
  for (const node of document.querySelectorAll("[data-kpi]")) node.textContent = data[node.dataset.kpi];
  cumulativeChart(document.getElementById("chart-progress"), data.timeline.points);
  barChart(
    document.getElementById("chart-annotators"),
    data.annotators.map((a) => ({ label: a.username, value: a.total, secondary: a.last_hour })),
  );
  const body = document.querySelector("#annotators tbody");
  body.replaceChildren(...data.annotators.map((a) => {
    const tr = document.createElement("tr");
    tr.dataset.annotator = a.username;
    const cells = [a.username, a.total, a.last_hour, a.avg_seconds === null ? "–" : `${a.avg_seconds} s`,
      a.last_at ? new Date(a.last_at).toLocaleString() : "–", a.working ? "judging" : ""];
    for (const c of cells) tr.append(Object.assign(document.createElement("td"), { textContent: c }));
    return tr;
  }));
  document.getElementById("updated").textContent = new Date(data.generated_at).toLocaleTimeString();
}

async function refresh() {
  try {
    // The training panel's data failing must not stop the judging numbers (and the other way round).
    const [data, training] = await Promise.all([getJSON(page.data_url), getJSON(page.runs_data_url).catch(() => null)]);
    render(data);
    // A run that joined the panel (a new one, or the active set changed) needs its row: say so.
    if (training && applyRuns(training).length) document.getElementById("new-runs").hidden = false;
  } catch (err) {
    connection?.setMode(live.dataset.mode, `update failed: ${err.message}`);
  }
}

// Events come in bursts (lease, then judgment): one fetch per burst.
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 150);
}

render(page.initial);
connection = connectLive({
  wsPath: page.ws_path,
  status: live,
  refresh, // on (re)connect, to catch up on whatever happened while disconnected, and on every poll
  onEvent: (message) => {
    // Training progress arrives every half second while a run trains: it updates its row in place rather
    // than re-reading the whole dashboard.
    if (message.event === "run.progress" && applyProgress(message.payload)) return;
    refreshSoon();
  },
});
