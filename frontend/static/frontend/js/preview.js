// Live preview of the guidelines: the text goes through the server's renderer (the same Markdown and the same
// sanitizer annotators get), so what the admin sees is exactly what annotators will see.
import { request } from "./http.js";

const preview = document.getElementById("guidelines-preview");
const source = preview && document.getElementById(preview.dataset.source);
let timer = null;
let seq = 0;

async function render() {
  const mine = ++seq;
  const body = new FormData();
  body.append("text", source.value);
  try {
    const data = await request("POST", preview.dataset.url, { body });
    if (mine === seq) preview.innerHTML = data.html; // sanitized server-side (labeling.rendering)
  } catch (err) {
    if (mine === seq) preview.textContent = `Preview unavailable: ${err.message}`;
  }
}

if (source) {
  source.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(render, 250);
  });
  render();
}
