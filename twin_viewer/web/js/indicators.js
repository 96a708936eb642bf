// Indicator panel: each district (and the region) against its 2025 target as inline SVG bars.
// A bar is the value as a share of the target (the tick marks the target); its colour is the lake's status.

const SVG = "http://www.w3.org/2000/svg";
const UNITS = { percent: "%", "10k km2": "万 km²", km2: "km²" };
const ROW = 17;
const NAME_W = 104;
const BAR_X = 108;
const BAR_W = 150;
const MAX_RATIO = 2;

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function formatValue(value, unit) {
  if (value === null || value === undefined) return "—";
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 1 ? 2 : 4;
  return `${value.toFixed(digits)} ${UNITS[unit] ?? unit}`;
}

export class IndicatorPanel {
  constructor({ select, chart, note }, onPick) {
    Object.assign(this, { select, chart, note, onPick, data: null });
    select.addEventListener("change", () => this.draw());
  }

  load(data) {
    this.data = data;
    this.select.replaceChildren(...data.indicators.map((i) =>
      Object.assign(document.createElement("option"), { value: i.id, textContent: `${i.name_zh} · ${i.name_en}` })));
    this.draw();
  }

  draw() {
    const indicator = this.data.indicators.find((i) => i.id === this.select.value) ?? this.data.indicators[0];
    const rows = this.data.rows;
    const rule = indicator.direction === "max" ? "不超过 at most" : "不少于 at least";
    this.note.textContent = `2025 目标 target: ${rule} ${formatValue(indicator.target_2025, indicator.unit)}` +
      ` (全市 region; 区县目标按份额分解 · district targets are shares) · ${indicator.binding === "binding" ?
        "约束性 binding" : "预期性 expected"}`;
    const height = rows.length * ROW + 24;
    const svg = el("svg", { viewBox: `0 0 340 ${height}`, role: "img", "aria-label": indicator.name_en });
    const targetX = BAR_X + BAR_W / MAX_RATIO;
    rows.forEach((r, i) => {
      const v = r.values[indicator.id] ?? {};
      const y = i * ROW;
      const g = el("g", { class: "row", "data-code": r.code, transform: `translate(0 ${y})` });
      const title = el("title", {}, `${r.name} ${r.code}: ${formatValue(v.value, indicator.unit)} / ` +
        `${formatValue(v.target, indicator.unit)} — ${v.status ?? "?"}`);
      const ratio = v.value != null && v.target ? Math.min(v.value / v.target, MAX_RATIO) : 0;
      const status = (v.status ?? "unknown").replace(/\s+/g, "-");
      g.append(title, el("rect", { class: "bg", x: 0, y: 0, width: 340, height: ROW, fill: "transparent" }),
        el("text", { x: 2, y: 12, "font-weight": r.region ? "bold" : "normal" },
          r.region ? `${r.name} 全市` : r.name.length > 7 ? `${r.name.slice(0, 6)}…` : r.name),
        el("rect", { x: BAR_X, y: 3, width: BAR_W, height: ROW - 6, fill: "#ffffff10" }),
        el("rect", { class: `bar status-${status}`, x: BAR_X, y: 3, width: (ratio / MAX_RATIO) * BAR_W,
          height: ROW - 6 }),
        el("text", { class: "value", x: BAR_X + BAR_W + 4, y: 12 }, formatValue(v.value, indicator.unit)));
      g.addEventListener("click", () => this.onPick(r.code));
      svg.append(g);
      if (r.region) svg.append(el("line", { x1: 0, x2: 340, y1: y + ROW, y2: y + ROW, stroke: "#30363d" }));
    });
    svg.append(el("line", { x1: targetX, x2: targetX, y1: 0, y2: rows.length * ROW, stroke: "#e6edf3",
      "stroke-dasharray": "3 2" }));
    svg.append(el("text", { x: targetX - 18, y: rows.length * ROW + 14 }, "目标 target"));
    const legend = document.createElement("div");
    legend.className = "chart-legend";
    legend.innerHTML = '<span><i style="background:var(--met)"></i>达标 met</span>' +
      '<span><i style="background:var(--risk)"></i>预警 at risk</span>' +
      '<span><i style="background:var(--breached)"></i>超限 breached</span>' +
      `<span>${rows.filter((r) => !r.region).length} 区县 districts + 全市</span>`;
    this.chart.replaceChildren(legend, svg);
  }
}
