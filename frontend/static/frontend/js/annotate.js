// The annotator workspace: one item at a time, keyboard first. Talks to the REST API only:
// queue/next, assignments/<id>/submit|skip, judgments/<id>/undo, campaigns/<id>/progress.
// Texts arrive with `html` already rendered and sanitized by the server; nothing else is inserted as HTML.
import { HttpError, getJSON, pageData, postJSON, uuid4, withRetries } from "./http.js";
import { Ranking } from "./ranking.js";

const page = pageData();
const $ = (id) => document.getElementById(id);
const ui = {
  work: $("work"), loading: $("loading"), prompt: $("prompt"), promptBody: $("prompt-body"),
  responses: $("responses"), empty: $("empty"), emptyReason: $("empty-reason"), bar: $("actionbar"),
  pairwise: $("pairwise-controls"), strength: $("strength-controls"), rankingBox: $("ranking-controls"),
  rationale: $("rationale"), submit: $("submit"), skip: $("skip"), undo: $("undo"), status: $("status"),
  banner: $("banner"), guidelines: $("guidelines"), guidelinesToggle: $("guidelines-toggle"),
};
const LETTERS = "ABCDEFGHI";
const state = {
  current: null, clientId: null, choice: null, strength: null, busy: false,
  lastJudgment: null, prefetched: null, prefetchSupported: true, unsaved: null,
  inflight: new Set(), // slots whose judgment is being delivered: never prefetch them back
};
const ranking = new Ranking($("rank-list"), () => paintRanks());

// --- time on item: counts only while the page is visible ------------------------------------------------
const timer = {
  acc: 0, since: null,
  start() { this.acc = 0; this.since = document.hidden ? null : performance.now(); },
  pause() { if (this.since !== null) { this.acc += performance.now() - this.since; this.since = null; } },
  resume() { if (this.since === null) this.since = performance.now(); },
  ms() { return Math.round(this.acc + (this.since !== null ? performance.now() - this.since : 0)); },
};
document.addEventListener("visibilitychange", () => (document.hidden ? timer.pause() : timer.resume()));

// --- URLs -----------------------------------------------------------------------------------------------
const assignmentUrl = (id, action) => page.api.assignment.replace(/\/0\/$/, `/${id}/`) + action;
const undoUrl = (id) => page.api.undo.replace("/0/", `/${id}/`);
const opts = { csrf: page.csrf };

// --- rendering ------------------------------------------------------------------------------------------
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function mdBlock(html, fallbackText) {
  const body = el("div", "md");
  if (html !== undefined) body.innerHTML = html; // sanitized server-side (labeling.rendering)
  else body.textContent = fallbackText || "";
  return body;
}

function renderPrompt(prompt) {
  ui.promptBody.replaceChildren();
  if (prompt.kind === "chat" && prompt.messages.length) {
    for (const m of prompt.messages) {
      const turn = el("div", `turn role-${m.role === "user" ? "user" : m.role === "system" ? "system" : "assistant"}`);
      turn.append(el("div", "turn-role", m.role), mdBlock(m.html, m.content));
      ui.promptBody.append(turn);
    }
  } else {
    ui.promptBody.append(mdBlock(prompt.html, prompt.text));
  }
}

function renderResponses(a) {
  ui.responses.replaceChildren();
  ui.responses.classList.toggle("many", a.responses.length > 2);
  a.responses.forEach((r, i) => {
    const card = el("article", "response");
    card.dataset.id = r.id;
    card.setAttribute("aria-labelledby", `resp-${i}`);
    const head = el("header", "response-head");
    const title = el("h2", "response-label", `Response ${LETTERS[i]}`);
    title.id = `resp-${i}`;
    head.append(title, el("kbd", "", String(i + 1)), el("span", "rank-badge"));
    card.append(head, mdBlock(r.html, r.text));
    ui.responses.append(card);
  });
}

function show(a) {
  state.current = a;
  state.clientId = uuid4();
  state.choice = null;
  state.strength = null;
  if (ui.rationale) ui.rationale.value = "";
  const isRanking = a.kind === "ranking";
  renderPrompt(a.prompt);
  renderResponses(a);
  ui.pairwise.hidden = isRanking;
  if (ui.strength) ui.strength.hidden = isRanking;
  ui.rankingBox.hidden = !isRanking;
  if (isRanking) {
    const labels = Object.fromEntries(a.responses.map((r, i) => [r.id, LETTERS[i]]));
    ranking.reset(a.responses.map((r) => r.id), labels);
  }
  for (const node of [ui.prompt, ui.responses, ui.bar]) node.hidden = false;
  ui.empty.hidden = true;
  ui.loading.hidden = true;
  ui.work.dataset.assignment = a.id;
  if (state.prefetched && state.prefetched.id === a.id) state.prefetched = null; // never queue what is shown
  ui.work.setAttribute("aria-busy", "false");
  paintChoice();
  paintRanks();
  window.scrollTo(0, 0);
  timer.start();
  markReady();
  prefetch();
}

function showEmpty(reason) {
  state.current = null;
  for (const node of [ui.prompt, ui.responses, ui.bar, ui.loading]) node.hidden = true;
  if (reason) ui.emptyReason.textContent = reason;
  ui.empty.hidden = false;
  ui.work.dataset.assignment = "";
  ui.work.setAttribute("aria-busy", "false");
  markReady();
}

function markReady() {
  if (document.documentElement.dataset.ready) return;
  performance.mark("lw-ready");
  document.documentElement.dataset.ready = "true";
}

function paintChoice() {
  for (const b of ui.pairwise.querySelectorAll("[data-choice]")) {
    b.setAttribute("aria-pressed", String(b.dataset.choice === state.choice));
  }
  if (ui.strength) {
    for (const b of ui.strength.querySelectorAll("[data-strength]")) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.strength) === state.strength));
      b.disabled = state.choice !== "a" && state.choice !== "b";
    }
  }
  const cards = ui.responses.querySelectorAll(".response");
  cards.forEach((card, i) => {
    const winner = (state.choice === "a" && i === 0) || (state.choice === "b" && i === 1);
    card.classList.toggle("chosen", winner);
    card.classList.toggle("tied", state.choice === "tie");
    card.classList.toggle("bad", state.choice === "both_bad");
  });
}

function paintRanks() {
  if (!state.current || state.current.kind !== "ranking") return;
  for (const card of ui.responses.querySelectorAll(".response")) {
    card.querySelector(".rank-badge").textContent = `Rank ${ranking.rankOf(Number(card.dataset.id))}`;
  }
}

function say(text) { ui.status.textContent = text; }

function banner(text) {
  ui.banner.textContent = text;
  ui.banner.hidden = !text;
}

function setBusy(busy) {
  state.busy = busy;
  ui.submit.disabled = busy;
  ui.skip.disabled = busy;
  ui.work.setAttribute("aria-busy", String(busy));
}

// --- choices --------------------------------------------------------------------------------------------
function choose(choice) {
  if (!state.current || state.current.kind !== "pairwise") return;
  if (!ui.pairwise.querySelector(`[data-choice="${choice}"]`)) return; // turned off in this campaign
  state.choice = choice;
  if (choice !== "a" && choice !== "b") state.strength = null;
  paintChoice();
}

function setStrength(n) {
  if (!ui.strength || (state.choice !== "a" && state.choice !== "b")) {
    say("Choose A or B first, then how much better.");
    return;
  }
  state.strength = n;
  paintChoice();
}

function judgmentBody() {
  const a = state.current;
  const body = { client_id: state.clientId, time_spent_ms: timer.ms(), rationale: ui.rationale ? ui.rationale.value : "" };
  if (a.kind === "ranking") {
    body.ranking = ranking.groups();
  } else if (state.choice === "a" || state.choice === "b") {
    body.winner = a.responses[state.choice === "a" ? 0 : 1].id;
    body.strength = state.strength;
  } else if (state.choice === "tie") {
    body.tie = true;
  } else if (state.choice === "both_bad") {
    body.both_bad = true;
  } else {
    return null;
  }
  return body;
}

// --- queue calls ----------------------------------------------------------------------------------------
async function loadNext() {
  setBusy(true);
  try {
    const data = await withRetries(() => postJSON(page.api.next, { exclude: [...state.inflight] }, opts));
    if (data.assignment) show(data.assignment);
    else showEmpty();
  } catch (err) {
    if (err instanceof HttpError && (err.status === 403 || err.status === 409)) showEmpty(err.message);
    else banner(`Could not load the next item: ${err.message}. Reload the page to try again.`);
  } finally {
    setBusy(false);
  }
}

// Lease the following item while this one is judged, so that submitting shows it at once. Needs the API to
// lease a second slot when asked to exclude the held one; an API that hands back the held slot instead
// means "not supported", and the page falls back to asking after each submit.
async function prefetch() {
  if (!state.prefetchSupported || state.prefetched || !state.current) return;
  const held = state.current.id;
  try {
    const data = await postJSON(page.api.next, { exclude: [held, ...state.inflight] }, opts);
    const next = data.assignment;
    if (next && next.id !== held && state.current && state.current.id === held) state.prefetched = next;
    else if (next && next.id === held) state.prefetchSupported = false;
  } catch {
    state.prefetchSupported = false;
  }
}

async function deliver(job) {
  const url = assignmentUrl(job.assignmentId, "submit/");
  state.inflight.add(job.assignmentId);
  try {
    const judgment = await withRetries(() => postJSON(url, job.body, opts), {
      onRetry: (n) => say(`Connection problem: retrying (${n})…`),
    });
    state.lastJudgment = judgment.id;
    state.unsaved = null;
    // How many judgments this page has stored: submits after a prefetch are delivered in the background,
    // and tests (or anything else watching) read this to know the server has them.
    const work = document.getElementById("work");
    work.dataset.saved = String(Number(work.dataset.saved || 0) + 1);
    ui.undo.disabled = false;
    banner("");
    say("Saved.");
    refreshProgress();
    state.inflight.delete(job.assignmentId);
    prefetch(); // the lease cap may have kept the last prefetch from finding anything
    return true;
  } catch (err) {
    state.inflight.delete(job.assignmentId);
    if (err instanceof HttpError && !err.transient) {
      say("");
      banner(`Not saved: ${err.message}`);
      return err.status === 409 ? "gone" : false;
    }
    state.unsaved = job;
    say("");
    banner("Your judgment could not be saved: the server is unreachable. Press Enter to try again (it will not be counted twice).");
    return false;
  }
}

async function submit() {
  if (state.busy) return;
  if (state.unsaved && (!state.current || state.unsaved.assignmentId !== state.current.id)) {
    setBusy(true);
    await deliver(state.unsaved); // an earlier item's judgment that failed in the background
    setBusy(false);
    return;
  }
  if (!state.current) return;
  const body = judgmentBody();
  if (!body) return say("Choose first: 1 / 2 for A / B, T for a tie, B for both bad.");
  if (ui.rationale && ui.rationale.required && !body.rationale.trim()) {
    ui.rationale.focus();
    return say("This campaign asks for a rationale: write one, then Ctrl+Enter.");
  }
  const job = { assignmentId: state.current.id, body };
  if (state.prefetched) {
    const next = state.prefetched;
    state.prefetched = null;
    deliver(job); // first: it marks the slot in flight before show() prefetches, so it is not fetched back
    show(next);
    return;
  }
  setBusy(true);
  say("Saving…");
  const ok = await deliver(job);
  setBusy(false);
  if (!ok) return;
  // true, or "gone": the slot is no longer ours to judge. A prefetch that landed meanwhile is the next item.
  const next = state.prefetched;
  state.prefetched = null;
  if (next && next.id !== job.assignmentId) show(next);
  else await loadNext();
}

async function skip() {
  if (state.busy || !state.current) return;
  setBusy(true);
  try {
    await withRetries(() => postJSON(assignmentUrl(state.current.id, "skip/"), { reason: "" }, opts));
    say("Skipped.");
  } catch (err) {
    banner(`Could not skip: ${err.message}`);
  } finally {
    setBusy(false);
  }
  state.prefetched = null;
  await loadNext();
}

async function undo() {
  if (state.busy || !state.lastJudgment) return;
  setBusy(true);
  try {
    const slot = await postJSON(undoUrl(state.lastJudgment), undefined, opts);
    state.lastJudgment = null;
    ui.undo.disabled = true;
    state.prefetched = null;
    show(slot);
    say("Undone: judge this item again.");
    refreshProgress();
  } catch (err) {
    banner(`Could not undo: ${err.message}`);
  } finally {
    setBusy(false);
  }
}

async function refreshProgress() {
  try {
    const p = await getJSON(page.api.progress);
    for (const node of document.querySelectorAll("[data-progress]")) node.textContent = p[node.dataset.progress];
  } catch { /* the header is a nicety: keep the old numbers */ }
}

// --- guidelines panel -----------------------------------------------------------------------------------
// On screen by default where there is room beside the item (the product brief: "guidelines on screen"),
// collapsed by default on narrow screens, where they would push the item away. G toggles; the choice is
// remembered per layout, so hiding them on a phone does not hide them on the desk.
const WIDE = window.matchMedia("(min-width: 901px)");
const guidelinesKey = () => `lw-guidelines-${WIDE.matches ? "wide" : "narrow"}`;

function showGuidelines(open) {
  ui.guidelines.hidden = !open;
  delete ui.guidelines.dataset.auto;
  ui.guidelinesToggle.setAttribute("aria-expanded", String(open));
}

function toggleGuidelines(open = ui.guidelines.hidden) {
  showGuidelines(open);
  try { localStorage.setItem(guidelinesKey(), open ? "1" : "0"); } catch { /* private mode */ }
}

function initialGuidelines() {
  let stored = null;
  try { stored = localStorage.getItem(guidelinesKey()); } catch { /* private mode */ }
  showGuidelines(stored === null ? WIDE.matches && !("empty" in ui.guidelines.dataset) : stored === "1");
}

// --- keyboard -------------------------------------------------------------------------------------------
function onKey(e) {
  const typing = e.target.closest && e.target.closest("textarea, input, select");
  if (typing) {
    if (e.key === "Escape") e.target.blur();
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
    return;
  }
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  // Enter on a focused link or button (the skip link, Skip, Undo, the top bar) does what that control does;
  // on a choice or a ranking chip (focused as the ranking keys move it) it still submits: choosing is what
  // the click already did.
  if (e.key === "Enter" && e.target.closest("a[href], button:not(.choice, .rank-chip, .rank-sep)")) return;
  const digit = /^Digit([1-9])$/.exec(e.code);
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const isRanking = state.current && state.current.kind === "ranking";
  let handled = true;
  if (digit && e.shiftKey && !isRanking && Number(digit[1]) <= 3) setStrength(Number(digit[1]));
  else if (digit && isRanking) {
    const r = state.current.responses[Number(digit[1]) - 1];
    if (r) ranking.select(r.id);
  } else if (digit && digit[1] === "1") choose("a");
  else if (digit && digit[1] === "2") choose("b");
  else if (isRanking && (key === "ArrowLeft" || key === "ArrowUp")) ranking.move(-1);
  else if (isRanking && (key === "ArrowRight" || key === "ArrowDown")) ranking.move(1);
  else if (key === "t") (isRanking ? ranking.toggleTie() : choose("tie"));
  else if (key === "b") choose("both_bad");
  else if (key === "Enter") submit();
  else if (key === "s") skip();
  else if (key === "u") undo();
  else if (key === "g") toggleGuidelines();
  else if (key === "r" && ui.rationale) ui.rationale.focus();
  else handled = false;
  if (handled) e.preventDefault();
}

// --- wiring ---------------------------------------------------------------------------------------------
document.addEventListener("keydown", onKey);
ui.bar.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
ui.pairwise.addEventListener("click", (e) => { const b = e.target.closest("[data-choice]"); if (b) choose(b.dataset.choice); });
if (ui.strength) ui.strength.addEventListener("click", (e) => { const b = e.target.closest("[data-strength]"); if (b) setStrength(Number(b.dataset.strength)); });
ui.skip.addEventListener("click", skip);
ui.undo.addEventListener("click", undo);
ui.guidelinesToggle.addEventListener("click", () => toggleGuidelines());
$("check-again").addEventListener("click", loadNext);
initialGuidelines();
refreshProgress();
loadNext();
