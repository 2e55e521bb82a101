// Import upload in two steps: "Check file" POSTs it as a dry run (nothing written) and shows what it would
// create or every problem by line and field; only then does "Import" POST the same file for real.
import { HttpError, pageData, request } from "./http.js";

const page = pageData();
const form = document.getElementById("import-form");
const result = document.getElementById("import-result");
const check = document.getElementById("import-check");
const commit = document.getElementById("import-commit");
const formatSelect = document.getElementById("import-format");
const formatHelp = document.getElementById("import-format-help");
const defaultHelp = formatHelp.textContent;

const COUNTS = [
  ["records", "Records read"],
  ["items_created", "Comparison items"],
  ["judgments_created", "Imported labels"],
  ["prompts_created", "New prompts"],
  ["prompts_existing", "Prompts already in the campaign"],
  ["duplicates_count", "Duplicates (left out)"],
  ["skipped_count", "Skipped records"],
];
const LISTED = 50; // rows shown per list; the counts above are complete

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return Object.assign(node, attrs);
}

function table(caption, headers, rows) {
  const t = el("table", undefined, { className: "data" });
  t.append(el("caption", caption));
  const head = t.createTHead().insertRow();
  for (const h of headers) head.append(el("th", h, { scope: "col" }));
  const body = t.createTBody();
  for (const cells of rows) {
    const row = body.insertRow();
    for (const c of cells) row.append(el("td", c ?? ""));
  }
  return t;
}

function formData(dryRun) {
  const data = new FormData(form);
  data.set("dry_run", dryRun ? "true" : "false");
  data.set("skip_unsplittable", document.getElementById("import-skip-unsplittable").checked ? "true" : "false");
  if (!data.get("round")) data.delete("round");
  if (!data.get("label_source")) data.delete("label_source");
  return data;
}

function showReport(report) {
  const dry = report.dry_run;
  const nodes = [el("h2", dry ? "Checked: the file is valid, nothing has been written yet" : "Imported")];
  nodes[0].id = "import-outcome";
  nodes[0].dataset.outcome = dry ? "checked" : "imported";
  nodes.push(el("p", `Format ${report.format} (${report.container}).${dry ? " Numbers are what Import would create." : ""}`,
    { className: "meta" }));
  const dl = el("dl", undefined, { className: "report-counts", id: "import-counts" });
  for (const [key, label] of COUNTS) {
    if (!(key in report)) continue;
    const dd = el("dd", report[key]);
    dd.dataset.count = key;
    dl.append(el("dt", label), dd);
  }
  nodes.push(dl);
  if (report.notes?.length) {
    const ul = el("ul", undefined, { className: "notes" });
    for (const n of report.notes) ul.append(el("li", n));
    nodes.push(el("h3", "Notes"), ul);
  }
  if (report.skipped?.length) {
    nodes.push(table("Skipped records", ["Line", "Field", "Reason"],
      report.skipped.slice(0, LISTED).map((s) => [s.line, s.field, s.message])));
  }
  if (report.duplicates?.length) {
    nodes.push(table("Duplicates", ["Line", "Why"], report.duplicates.slice(0, LISTED).map((d) => [d.line, d.reason])));
  }
  if (!dry) {
    const links = el("p");
    const href = (path) => `/campaigns/${page.campaign}/${path}/`;
    links.append(el("a", "Open the dashboard", { href: href("dashboard") }), " · ",
      el("a", "Browse judgments", { href: href("judgments") }));
    nodes.push(links);
  }
  result.replaceChildren(...nodes);
}

function showErrors(body, status) {
  const heading = el("h2", "The file cannot be imported", { id: "import-outcome" });
  heading.dataset.outcome = "rejected";
  const detail = el("p", body?.detail || body?.error || `HTTP ${status}`, { className: "error", id: "import-detail" });
  const nodes = [heading, detail];
  const errors = Array.isArray(body?.errors) ? body.errors : [];
  if (errors.length) {
    const t = table("Problems by line and field. Fix them and check the file again.", ["Line", "Field", "Problem"],
      errors.map((e) => [e.line, e.field, e.message]));
    t.id = "import-errors";
    nodes.push(t);
    if (body.errors_truncated) nodes.push(el("p", "Only the first problems are listed; there are more.", { className: "meta" }));
  }
  result.replaceChildren(...nodes);
}

async function send(dryRun) {
  if (!document.getElementById("import-file").files.length) {
    showErrors({ detail: "Choose a file first." }, 400);
    document.getElementById("import-file").focus();
    return;
  }
  check.disabled = commit.disabled = true;
  form.setAttribute("aria-busy", "true");
  result.replaceChildren(el("p", dryRun ? "Checking the file…" : "Importing…"));
  try {
    const report = await request("POST", page.url, { body: formData(dryRun), csrf: page.csrf });
    showReport(report);
    const creates = (report.items_created || 0) + (report.prompts_created || 0) + (report.judgments_created || 0);
    commit.hidden = !(dryRun && creates > 0);
    check.classList.toggle("primary", commit.hidden); // the next step is the one that stands out
    commit.textContent = `Import ${report.records} record${report.records === 1 ? "" : "s"}`;
    if (!commit.hidden) commit.focus();
  } catch (err) {
    commit.hidden = true;
    check.classList.add("primary");
    if (err instanceof HttpError) showErrors(err.body, err.status);
    else showErrors({ detail: `The upload failed: ${err.message}` }, 0);
  } finally {
    check.disabled = commit.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

form.addEventListener("submit", (e) => { e.preventDefault(); send(true); });
commit.addEventListener("click", () => send(false));
// A checked report is only good for the file and options it checked.
form.addEventListener("change", (e) => {
  if (e.target === formatSelect) {
    formatHelp.textContent = formatSelect.selectedOptions[0].dataset.help || defaultHelp;
  }
  if (!commit.hidden) {
    commit.hidden = true;
    check.classList.add("primary");
    result.replaceChildren(el("p", "The file or options changed: check it again before importing.", { className: "meta" }));
  }
});
