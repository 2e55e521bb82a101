// Live campaign dashboard: numbers and charts from /dashboard/data/, refreshed when the campaign's WebSocket
// reports an event (a judgment recorded, an item leased...). When the socket fails, it polls instead and keeps
// trying to reconnect.
import { barChart, cumulativeChart } from "./charts.js";
import { getJSON, pageData } from "./http.js";
import { applyProgress, applyRuns } from "./training.js";

const page = pageData();
const live = document.getElementById("live");
const params = new URLSearchParams(location.search);
const POLL_MS = Math.max(1000, Number(params.get("poll")) || 10_000);
let pollTimer = null;
let refreshTimer = null;
let retryMs = 1000;

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
    setMode(live.dataset.mode, `update failed: ${err.message}`);
  }
}

// Events come in bursts (lease, then judgment): one fetch per burst.
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 150);
}

function setMode(mode, note = "") {
  live.dataset.mode = mode;
  const text = { live: "Live", polling: `Polling every ${POLL_MS / 1000} s`, connecting: "Connecting…" }[mode];
  live.textContent = note ? `${text} (${note})` : text;
}

function startPolling() {
  if (pollTimer) return;
  setMode("polling");
  pollTimer = setInterval(refresh, POLL_MS);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let socket;
  try {
    socket = new WebSocket(`${scheme}://${location.host}${page.ws_path}`);
  } catch {
    startPolling();
    return;
  }
  socket.addEventListener("open", () => {
    retryMs = 1000;
    clearInterval(pollTimer);
    pollTimer = null;
    setMode("live");
    refresh(); // catch up on whatever happened while disconnected
  });
  socket.addEventListener("message", (e) => {
    // Training progress arrives every half second while a run trains: it updates its row in place rather
    // than re-reading the whole dashboard.
    let message = {};
    try { message = JSON.parse(e.data); } catch { /* not ours: refresh anyway */ }
    if (message.event === "run.progress" && applyProgress(message.payload)) return;
    refreshSoon();
  });
  socket.addEventListener("close", () => {
    startPolling();
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 60_000);
  });
}

render(page.initial);
connect();
