// A campaign's live events for a page: the WebSocket when it connects, polling while it does not (and
// reconnecting with backoff). `onEvent` gets each socket message ({event, payload}); `refresh` fetches the
// page's numbers: on (re)connect to catch up, and on every poll.
export function connectLive({ wsPath, status, onEvent, refresh, pollMs }) {
  const params = new URLSearchParams(location.search);
  const POLL_MS = pollMs || Math.max(1000, Number(params.get("poll")) || 10_000);
  let pollTimer = null;
  let retryMs = 1000;

  function setMode(mode, note = "") {
    status.dataset.mode = mode;
    const text = { live: "Live", polling: `Polling every ${POLL_MS / 1000} s`, connecting: "Connecting…" }[mode];
    status.textContent = note ? `${text} (${note})` : text;
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
      socket = new WebSocket(`${scheme}://${location.host}${wsPath}`);
    } catch {
      startPolling();
      return;
    }
    socket.addEventListener("open", () => {
      retryMs = 1000;
      clearInterval(pollTimer);
      pollTimer = null;
      setMode("live");
      refresh();
    });
    socket.addEventListener("message", (e) => {
      let message;
      try { message = JSON.parse(e.data); } catch { return; }
      onEvent(message);
    });
    socket.addEventListener("close", () => {
      startPolling();
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 60_000);
    });
  }

  connect();
  return { setMode };
}
