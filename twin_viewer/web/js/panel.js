// The attribute panel: a title and a two-column table of whatever the lake returned.

import { FIELD_LABELS } from "./api.js";

const HIDDEN = new Set(["bbox", "centre", "geometry", "kind"]);

function format(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("zh-CN")
    : value.toLocaleString("zh-CN", { maximumFractionDigits: 2 });
  if (typeof value === "boolean") return value ? "是 yes" : "否 no";
  return String(value);
}

function table(record) {
  const t = document.createElement("table");
  for (const [key, value] of Object.entries(record)) {
    if (HIDDEN.has(key) || (value !== null && typeof value === "object")) continue;
    const row = t.insertRow();
    const th = document.createElement("th");
    th.textContent = FIELD_LABELS[key] ? `${FIELD_LABELS[key]} ${key}` : key;
    th.title = key;
    row.append(th);
    row.insertCell().textContent = format(value);
  }
  return t;
}

export class AttributePanel {
  constructor(element, showTab) {
    this.element = element;
    this.showTab = showTab;
  }

  // `id` is what the heading is about (tests read it from data-id); by default the record's own id.
  show(title, record, extra = [], id = null) {
    const heading = document.createElement("h3");
    heading.textContent = title;
    heading.dataset.id = id ?? record.building_id ?? record.parcel_id ?? record.hazard_id ?? "";
    this.element.replaceChildren(heading, table(record));
    for (const [subtitle, sub] of extra) {
      if (!sub) continue;
      this.element.append(Object.assign(document.createElement("div"), { className: "sub", textContent: subtitle }),
        table(sub));
    }
    this.showTab("attributes");
  }

  message(text) {
    this.element.replaceChildren(Object.assign(document.createElement("p"), { className: "hint", textContent: text }));
    this.showTab("attributes");
  }

  building(b) { this.show(`建筑 Building ${b.building_id}`, b); }

  parcel(p) {
    const main = p.one_map ?? p.survey?.at(-1) ?? p;
    const years = (p.survey ?? []).filter((s) => s !== main).map((s) => [`${s.survey_year} 年调查 · survey`, s]);
    this.show(`地块 Parcel ${p.parcel_id}`, { parcel_id: p.parcel_id, ...main }, years);
  }
}
