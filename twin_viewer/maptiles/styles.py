"""Overlay colours from palette.yaml: one category per land class / conflict severity / control-line type.

Each overlay paints a small integer per pixel (its category, 0 = nothing); `LayerStyle` turns those integers
into RGBA through lookup tables, so a tile is coloured with one numpy indexing step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import yaml

from lake.domain import land_classes

PALETTE_FILE = Path(__file__).resolve().parent / "palette.yaml"


def _rgba(hex_colour: str, alpha: int = 255) -> tuple[int, int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), alpha


def _darker(rgba: tuple[int, int, int, int], factor: float = 0.6) -> tuple[int, int, int, int]:
    return (*(int(c * factor) for c in rgba[:3]), 255)


@dataclass(frozen=True)
class LayerStyle:
    """Categories 1..n of one overlay (category 0 is transparent)."""

    names: tuple[str, ...]  # category i+1 is names[i]
    fill: np.ndarray  # (256, 4) uint8, row = category
    line: np.ndarray  # (256, 4) uint8: outlines and hatching
    hatch: bool
    fallback: int = 0  # category of a name not in `names` (0: not drawn)

    def category(self, name: str) -> int:
        return self.names.index(name) + 1 if name in self.names else 0

    def categories(self, names: list[str | None]) -> np.ndarray:
        lookup = {n: i + 1 for i, n in enumerate(self.names)}
        return np.array([lookup.get(n, self.fallback) for n in names], dtype=np.uint8)


def _style(names: list[str], fills: list[tuple[int, int, int, int]], lines: list[tuple[int, int, int, int]],
           hatch: bool, fallback: int = 0) -> LayerStyle:
    if len(names) > 254:
        raise ValueError(f"{PALETTE_FILE}: at most 254 categories per layer, got {len(names)}")
    fill, line = np.zeros((256, 4), np.uint8), np.zeros((256, 4), np.uint8)
    fill[1:len(names) + 1], line[1:len(names) + 1] = fills, lines
    return LayerStyle(tuple(names), fill, line, hatch, fallback)


@cache
def palette() -> dict:
    return yaml.safe_load(PALETTE_FILE.read_text(encoding="utf-8"))


@cache
def land_class_style() -> LayerStyle:
    """Every land class of the domain list, plus any extra code the palette names; a code in neither is drawn
    in `unknown_land_class` (the last category, `?`)."""
    p = palette()
    codes = list(dict.fromkeys([*land_classes(), *p["land_classes"]]))
    fills = [_rgba(p["land_classes"].get(c, p["unknown_land_class"]), p["fill_alpha"]) for c in codes]
    fills.append(_rgba(p["unknown_land_class"], p["fill_alpha"]))
    return _style([*codes, "?"], fills, [_darker(f) for f in fills], hatch=False, fallback=len(codes) + 1)


def _group_style(section: str, hatch: bool) -> LayerStyle:
    entries = palette()[section]
    return _style(list(entries), [_rgba(e["fill"], e["fill_alpha"]) for e in entries.values()],
                  [_rgba(e["line"]) for e in entries.values()], hatch)


@cache
def conflict_style() -> LayerStyle:
    """Severities in palette order (warn before error), so errors paint over warnings."""
    return _group_style("conflicts", hatch=True)


@cache
def control_line_style() -> LayerStyle:
    return _group_style("control_lines", hatch=False)


def _hex(rgba: np.ndarray) -> str:
    return "#" + "".join(f"{int(c):02X}" for c in rgba[:3])


def legend() -> list[dict]:
    """Land classes in code order with their colour, for the page's legend."""
    style = land_class_style()
    return [{"code": lc.code, "name": lc.name_zh, "name_en": lc.name_en, "group_code": lc.group_code,
             "group_name": lc.group_name_zh, "group_name_en": lc.group_name_en,
             "three_category": lc.three_category, "color": _hex(style.fill[style.category(lc.code)])}
            for lc in sorted(land_classes().values(), key=lambda lc: (lc.group_code, lc.code))]


def overlay_legend() -> dict[str, list[dict]]:
    """Colours of the conflict severities and control-line types (fill and outline), for the layer tree."""
    return {name: [{"key": key, "fill": _hex(style.fill[i + 1]), "line": _hex(style.line[i + 1])}
                   for i, key in enumerate(style.names)]
            for name, style in (("conflicts", conflict_style()), ("control_lines", control_line_style()))}
