// With more than one export format: only the chosen format's options are shown and submitted.
const select = document.getElementById("export-format");

function showOptions() {
  for (const set of document.querySelectorAll(".export-options")) {
    const on = set.dataset.format === select.value;
    set.hidden = !on;
    set.disabled = !on;
  }
}

select.addEventListener("change", showOptions);
showOptions();
