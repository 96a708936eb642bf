"""An independent oracle for the one map's conflicts: shapely overlays and pyproj geodesic areas (no DuckDB).

It recomputes every conflict rule from the silver tables, as transforms/models/marts/control_line_conflicts.sql
defines them, so tests can compare counts exactly and areas within 0.01%.
"""

from __future__ import annotations

import csv
from collections import defaultdict

import pyproj
import shapely

from lake import delta_io
from lake.registry import SILVER
from lake.settings import REPO_ROOT

GEOD = pyproj.Geod(a=6378137.0, rf=298.257222101)  # the CGCS2000 ellipsoid
MIN_AREA_M2 = 200.0  # rule_settings.min_conflict_area_m2


def geodesic_area(geom: shapely.Geometry) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0]) if geom is not None and not geom.is_empty else 0.0


def _classes() -> dict[str, dict[str, bool]]:
    with (REPO_ROOT / "transforms" / "seeds" / "land_classes.csv").open(encoding="utf-8") as f:
        return {r["code"]: {"construction": r["three_category"] == "construction",
                            "cultivated": r["is_cultivated"] == "true",
                            "farm_ok": r["allowed_in_basic_farmland"] == "true"} for r in csv.DictReader(f)}


def _rows(name: str) -> list[dict]:
    rows = delta_io.read_table(SILVER[name]).to_pylist()
    for r in rows:
        r["geom"] = shapely.from_wkb(r["geometry"])
    return rows


def oracle_conflicts() -> dict[str, dict[str, float]]:
    """rule id -> {parcel or building id: conflict area m²}."""
    classes = _classes()
    parcels = _rows("parcels")
    latest_year = max(p["survey_year"] for p in parcels)
    previous_year = max(p["survey_year"] for p in parcels if p["survey_year"] < latest_year)
    latest = [p for p in parcels if p["survey_year"] == latest_year]
    previous = {p["parcel_id"]: p["land_class_code"] for p in parcels if p["survey_year"] == previous_year}
    lines = defaultdict(list)
    for line in _rows("control_lines"):
        lines[line["line_type"]].append(line["geom"])
    union = {k: shapely.union_all(v) for k, v in lines.items()}
    for g in union.values():
        shapely.prepare(g)

    def overlap(geom: shapely.Geometry, line: str) -> float:
        if not union[line].intersects(geom):
            return 0.0
        if union[line].covers(geom):
            return geodesic_area(geom)
        return geodesic_area(shapely.intersection(geom, union[line]))

    out: dict[str, dict[str, float]] = defaultdict(dict)
    for p in latest:
        c = classes[p["land_class_code"]]
        pid, geom = p["parcel_id"], p["geom"]
        if c["construction"] and (a := overlap(geom, "ecological_red_line")) > MIN_AREA_M2:
            out["CONFLICT_CONSTRUCTION_IN_RED_LINE"][pid] = a
        if not c["farm_ok"] and (a := overlap(geom, "permanent_basic_farmland")) > MIN_AREA_M2:
            out["CONFLICT_NON_FARM_USE_IN_BASIC_FARMLAND"][pid] = a
        if c["construction"]:
            outside = geodesic_area(geom) - overlap(geom, "urban_development_boundary")
            if outside > MIN_AREA_M2:
                out["CONFLICT_CONSTRUCTION_OUTSIDE_URBAN_BOUNDARY"][pid] = outside
        before = previous.get(pid)
        if before is not None and classes[before]["cultivated"] and c["construction"]:
            out["CONFLICT_CULTIVATED_TO_CONSTRUCTION"][pid] = geodesic_area(geom)
    for b in _rows("buildings"):
        if (a := overlap(b["geom"], "permanent_basic_farmland")) > MIN_AREA_M2:
            out["CONFLICT_BUILDING_IN_BASIC_FARMLAND"][b["building_id"]] = a
    return dict(out)


def relative_error(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-9)


