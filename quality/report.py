"""One HTML quality report a person can read: per rule pass/fail, counts, sample rows and a small map (PNG,
embedded) of where the failures are, over the region's districts."""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import shapely  # noqa: E402

from lake import delta_io  # noqa: E402
from lake.registry import SILVER  # noqa: E402
from lake.settings import current_settings  # noqa: E402
from quality.results import RuleResult  # noqa: E402

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}.pass{color:#1a7f37}
.fail{color:#cf222e;font-weight:bold}.warn{color:#9a6700;font-weight:bold}section{margin:1.5em 0}
.samples td{font-family:monospace;font-size:90%}"""


def _district_outlines() -> list[shapely.Geometry]:
    table = delta_io.read_table(SILVER["districts"], columns=["geometry"])
    return list(shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)))


def _map_png(locations: list[tuple[float, float]], outlines: list[shapely.Geometry]) -> str:
    fig, ax = plt.subplots(figsize=(4, 3.2), dpi=90)
    for geom in outlines:
        for part in shapely.get_parts(geom):
            x, y = part.exterior.xy
            ax.plot(x, y, color="#999", linewidth=0.4)
    xs, ys = zip(*locations)
    ax.scatter(xs, ys, s=8, color="#cf222e", zorder=3)
    ax.set_aspect(1 / 0.866)  # about 1/cos(30°): degrees of longitude are shorter here
    ax.tick_params(labelsize=6)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _status(result: RuleResult) -> str:
    if result.passed:
        return '<span class="pass">pass</span>'
    return '<span class="fail">FAIL</span>' if result.rule.blocking else '<span class="warn">warn</span>'


def _samples(result: RuleResult) -> str:
    if not result.samples:
        return ""
    columns = list(result.samples[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(s.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for s in result.samples)
    return f'<table class="samples"><tr>{head}</tr>{rows}</table>'


def render(results: list[RuleResult], title: str) -> str:
    outlines = _district_outlines() if any(r.locations for r in results) else []
    blocked = [r for r in results if r.blocks]
    verdict = (f'<p class="fail">Not published: {len(blocked)} blocking rule(s) failed.</p>' if blocked
               else '<p class="pass">Every blocking rule passed.</p>')
    summary = "".join(f"<tr><td><a href='#{r.rule.id}'>{r.rule.id}</a></td><td>{r.rule.layer}</td>"
                      f"<td>{r.rule.severity}</td><td>{_status(r)}</td><td>{r.failing}</td>"
                      f"<td>{html.escape(r.rule.description)}</td></tr>" for r in results)
    sections = []
    for r in results:
        if r.passed:
            continue
        image = (f'<img alt="where {r.rule.id} fails" src="data:image/png;base64,{_map_png(r.locations, outlines)}">'
                 if r.locations else "")
        sections.append(f"<section id='{r.rule.id}'><h3>{r.rule.id} — {_status(r)} ({r.failing} failing)</h3>"
                        f"<p>{html.escape(r.rule.description)} {html.escape(r.note)}</p>{_samples(r)}{image}</section>")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{stamp}</p>{verdict}"
            f"<table><tr><th>rule</th><th>layer</th><th>severity</th><th>result</th><th>failing</th>"
            f"<th>description</th></tr>{summary}</table>{''.join(sections)}</body></html>")


def write_report(results: list[RuleResult], build_id: str) -> Path:
    """Write reports/quality-<build>.html and reports/quality-latest.html under $ONEMAP_HOME; return the former."""
    folder = current_settings().home / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    text = render(results, f"OneMap quality report — build {build_id}")
    path = folder / f"quality-{build_id}.html"
    path.write_text(text, encoding="utf-8")
    (folder / "quality-latest.html").write_text(text, encoding="utf-8")
    return path
