// Small fetch helpers shared by the pages: JSON in and out, the CSRF header, retries on network trouble.

export function pageData(id = "page-data") {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : {};
}

export class HttpError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
  // 5xx and 429 may pass on a retry; other statuses are answers.
  get transient() { return this.status >= 500 || this.status === 429; }
}

function csrfFromCookie() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function request(method, url, { body, csrf, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrf || csrfFromCookie();
  if (body !== undefined && !(body instanceof FormData)) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined || body instanceof FormData ? body : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text.slice(0, 200) }; }
  if (!response.ok) throw new HttpError(response.status, data);
  return data;
}

export const getJSON = (url, opts) => request("GET", url, opts);
export const postJSON = (url, body, opts = {}) => request("POST", url, { ...opts, body });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Run `attempt` until it succeeds, a non-transient HTTP error comes back, or the delays run out.
// A fetch that rejects (connection refused, aborted) is transient: the server may never have seen it.
export async function withRetries(attempt, { delays = [400, 1200, 3000], onRetry } = {}) {
  for (let i = 0; ; i++) {
    try {
      return await attempt(i);
    } catch (err) {
      const transient = !(err instanceof HttpError) || err.transient;
      if (!transient || i >= delays.length) throw err;
      if (onRetry) onRetry(i + 1, err);
      await sleep(delays[i]);
    }
  }
}

export function uuid4() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Plain-HTTP deployments (not a secure context) lack randomUUID; getRandomValues is always there.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
