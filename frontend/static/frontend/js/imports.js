// Import upload: POST the file to the imports API and show its report, or the lines and fields at fault.
import { HttpError, pageData, request } from "./http.js";

const page = pageData();
const form = document.getElementById("import-form");
const result = document.getElementById("import-result");
const submit = document.getElementById("import-submit");

function el(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

function showReport(report, dryRun) {
  const heading = el("h2", dryRun ? "Dry run: nothing was changed" : "Imported");
  const list = el("dl");
  for (const [key, value] of Object.entries(report)) {
    if (typeof value === "object") continue;
    list.append(el("dt", key.replaceAll("_", " ")), el("dd", String(value)));
  }
  result.replaceChildren(heading, list);
}

function showErrors(body) {
  const nodes = [el("h2", "The file was not imported")];
  const detail = el("p", body.detail || body.error || "Unknown error");
  detail.className = "error";
  nodes.push(detail);
  if (Array.isArray(body.errors) && body.errors.length) {
    const table = el("table");
    table.className = "data";
    const head = el("tr");
    for (const h of ["Line", "Field", "Problem"]) head.append(Object.assign(el("th", h), { scope: "col" }));
    table.append(el("thead"), el("tbody"));
    table.tHead.append(head);
    for (const e of body.errors.slice(0, 500)) {
      const row = el("tr");
      row.append(el("td", e.line ?? ""), el("td", e.field ?? ""), el("td", e.message ?? ""));
      table.tBodies[0].append(row);
    }
    nodes.push(table);
  }
  result.replaceChildren(...nodes);
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const data = new FormData(form);
  const dryRun = document.getElementById("import-dry-run").checked;
  data.set("dry_run", dryRun ? "true" : "false");
  submit.disabled = true;
  result.replaceChildren(el("p", "Uploading…"));
  try {
    showReport(await request("POST", page.url, { body: data, csrf: page.csrf }), dryRun);
  } catch (err) {
    showErrors(err instanceof HttpError && err.body ? err.body : { detail: err.message });
  } finally {
    submit.disabled = false;
  }
});
