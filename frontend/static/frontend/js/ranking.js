// K-way ranking with ties: an ordered row of response chips, best first. Between two neighbours a toggle says
// "ranked above" (≻) or "tied" (=). Reordered by drag and drop or by keyboard (pick, move, tie).

const el = (tag, props = {}, text) => {
  const node = Object.assign(document.createElement(tag), props);
  if (text !== undefined) node.textContent = text;
  return node;
};

export class Ranking {
  constructor(list, onChange) {
    this.list = list;
    this.onChange = onChange;
    this.order = [];   // response ids, best first
    this.ties = [];    // ties[i]: order[i] is tied with order[i + 1]
    this.labels = {};  // response id -> "A", "B", ...
    this.selected = null;
    this.touched = false;
    list.addEventListener("dragstart", (e) => this.dragStart(e));
    list.addEventListener("dragover", (e) => e.preventDefault());
    list.addEventListener("drop", (e) => this.drop(e));
  }

  reset(ids, labels) {
    this.order = [...ids];
    this.ties = ids.slice(1).map(() => false);
    this.labels = labels;
    this.selected = null;
    this.touched = false;
    this.render();
  }

  // Tie groups of response ids, best first: what the API takes.
  groups() {
    const groups = [[this.order[0]]];
    for (let i = 1; i < this.order.length; i++) {
      if (this.ties[i - 1]) groups[groups.length - 1].push(this.order[i]);
      else groups.push([this.order[i]]);
    }
    return groups;
  }

  rankOf(id) {
    return this.groups().findIndex((g) => g.includes(id)) + 1;
  }

  select(id) {
    if (!this.order.includes(id)) return;
    this.selected = id;
    this.render();
    this.list.querySelector(`[data-id="${id}"] .rank-chip`).focus();
  }

  move(delta) {
    if (this.selected === null) this.select(this.order[0]);
    const i = this.order.indexOf(this.selected);
    const j = i + delta;
    if (j < 0 || j >= this.order.length) return;
    [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
    this.changed();
    this.select(this.selected);
  }

  // Tie the picked response with its left neighbour (or, for the first, its right one); again to untie.
  toggleTie(index = null) {
    if (index === null) {
      if (this.selected === null) return;
      index = Math.max(0, this.order.indexOf(this.selected) - 1);
    }
    if (index >= this.ties.length) return;
    this.ties[index] = !this.ties[index];
    this.changed();
    if (this.selected !== null) this.select(this.selected);
    else this.render();
  }

  changed() {
    this.touched = true;
    this.onChange();
  }

  dragStart(e) {
    const item = e.target.closest("[data-id]");
    if (!item) return;
    e.dataTransfer.setData("text/plain", item.dataset.id);
    e.dataTransfer.effectAllowed = "move";
  }

  drop(e) {
    e.preventDefault();
    const id = Number(e.dataTransfer.getData("text/plain"));
    const target = e.target.closest("[data-id]");
    if (!target || !this.order.includes(id)) return;
    const rect = target.getBoundingClientRect();
    const from = this.order.indexOf(id);
    this.order.splice(from, 1);
    let to = this.order.indexOf(Number(target.dataset.id));
    if (to === -1) to = from;
    else if (e.clientX > rect.left + rect.width / 2) to += 1;
    this.order.splice(to, 0, id);
    this.selected = id;
    this.changed();
    this.render();
  }

  render() {
    this.list.replaceChildren();
    this.order.forEach((id, i) => {
      const item = el("li", { className: "rank-item", draggable: true });
      item.dataset.id = id;
      if (i > 0) {
        const tied = this.ties[i - 1];
        const sep = el("button", { type: "button", className: "rank-sep" }, tied ? "=" : "≻");
        sep.setAttribute("aria-pressed", String(tied));
        sep.setAttribute("aria-label", `Tie ${this.labels[this.order[i - 1]]} and ${this.labels[id]}`);
        sep.addEventListener("click", () => this.toggleTie(i - 1));
        item.append(sep);
      }
      const chip = el("button", { type: "button", className: "rank-chip" }, this.labels[id]);
      chip.setAttribute("aria-label", `Response ${this.labels[id]}, rank ${this.rankOf(id)} of ${this.order.length}`);
      if (id === this.selected) chip.classList.add("selected");
      chip.addEventListener("click", () => this.select(id));
      item.append(chip);
      this.list.append(item);
    });
  }
}
