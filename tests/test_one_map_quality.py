"""Quality pieces of the one map that need no build: GX failing for real, spheroid areas, the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import great_expectations.expectations as gxe
import pyproj
import shapely

from lake.duckdb_engine import connect
from quality.catalog import gate_rules, rules
from quality.gx_suites import validate_frame
from quality.report import render
from quality.results import RuleResult


def test_gx_failing_expectation_fails_on_pandas() -> None:
    frame = pd.DataFrame({"conflict_id": ["a", "a", "b"], "severity": ["error", "bad", "warn"]})
    result = validate_frame("GX_CONTROL_LINE_CONFLICTS", frame, [
        gxe.ExpectColumnValuesToBeUnique(column="conflict_id"),
        gxe.ExpectColumnValuesToBeInSet(column="severity", value_set=["error", "warn"])])
    assert result.failing == 2 and not result.passed and result.blocks
    good = validate_frame("GX_CONTROL_LINE_CONFLICTS", frame.iloc[[0, 2]], [
        gxe.ExpectColumnValuesToBeUnique(column="conflict_id")])
    assert good.passed


def test_duckdb_spheroid_area_needs_flip_and_matches_geod() -> None:
    """DESIGN §10: ST_Area_Spheroid reads latitude first; the models flip lon/lat and agree with pyproj Geod."""
    poly = shapely.Polygon([(106.5, 29.5), (106.6, 29.5), (106.62, 29.58), (106.5, 29.6)])
    geod = pyproj.Geod(a=6378137.0, rf=298.257222101)
    expected = abs(geod.geometry_area_perimeter(poly)[0])
    con = connect()
    flipped, raw = con.execute("select st_area_spheroid(st_flipcoordinates(st_geomfromtext(?))), "
                               "st_area_spheroid(st_geomfromtext(?))", [poly.wkt, poly.wkt]).fetchone()
    assert abs(flipped - expected) / expected < 1e-9
    assert not (abs(raw - expected) / expected < 1e-3)  # unflipped is wrong (NaN or off)


def test_catalog_covers_design_rules_and_report_renders() -> None:
    ids = set(rules())
    assert {"LAND_CLASS_UNKNOWN", "PARCEL_OVERLAP", "DISTRICT_GAP", "DISTRICT_AREA_RECONCILES",
            "BUILDING_INSIDE_REGION", "REFERENTIAL_INTEGRITY", "PARCEL_OUTSIDE_DISTRICT", "CONTROL_LINE_NOT_POLYGON",
            "GX_ONE_MAP_PARCELS", "DBT_TESTS", "primary_key_unique"} <= ids
    assert all(r.severity in ("error", "warn") for r in rules().values())
    failing = RuleResult(rules()["PARCEL_OVERLAP"], 1, [{"parcels": "A & B (2023)", "detail": "overlap 5 m²"}])
    html = render([failing, *(RuleResult(r, 0) for r in gate_rules() if r.id != "PARCEL_OVERLAP")], "t")
    assert "PARCEL_OVERLAP" in html and "A &amp; B (2023)" in html and "Not published" in html


def test_dbt_sql_passes_the_projects_sqlfluff_rules() -> None:
    transforms = Path(__file__).resolve().parent.parent / "transforms"
    sqlfluff = Path(sys.executable).parent / "sqlfluff"
    run = subprocess.run([str(sqlfluff), "lint", "models", "--format", "json", "--nofail"], cwd=transforms,
                         capture_output=True, text=True, timeout=300, check=True)
    files = json.loads(run.stdout)
    assert len(files) >= 20  # every model was linted (config in transforms/.sqlfluff)
    violations = [f"{f['filepath']}:{v['start_line_no']} {v['code']} {v['description']}"
                  for f in files for v in f["violations"]]
    assert not violations, "\n".join(violations)
