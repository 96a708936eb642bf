"""The onemap CLI as an operator runs it: exit codes, one-line errors, status, query formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest


def onemap(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "ONEMAP_HOME": str(home), "COLUMNS": "200"}, timeout=300)


@pytest.fixture
def districts_home(home: Path, realdata: Path) -> Path:
    result = onemap(home, "ingest", str(realdata / "admin_boundaries/cq_500000_full.json"),
                    "--feed", "chongqing_datav_districts")
    assert result.returncode == 0, result.stderr
    assert "ingested" in result.stdout and "silver=38" in result.stdout
    return home


def test_ingest_twice_skips(districts_home: Path, realdata: Path) -> None:
    again = onemap(districts_home, "ingest", str(realdata / "admin_boundaries/cq_500000_full.json"),
                   "--feed", "chongqing_datav_districts")
    assert again.returncode == 0
    assert "skipped" in again.stdout and "already ingested" in again.stdout


def test_status_json_and_history(districts_home: Path) -> None:
    status = onemap(districts_home, "status", "--json")
    assert status.returncode == 0, status.stderr
    tables = {t["table"]: t for t in json.loads(status.stdout)}
    assert tables["silver/districts"]["rows"] == 38
    assert tables["silver/districts"]["quarantined_rows"] == 0
    assert tables["bronze/districts"]["last_batch"]
    history = onemap(districts_home, "status", "--history", "silver/districts", "--json")
    operations = [v["operation"] for v in json.loads(history.stdout)]
    assert operations[0] in {"WRITE", "MERGE"} and operations[-1] == "CREATE TABLE"


def test_query_formats(districts_home: Path, tmp_path: Path) -> None:
    sql = "SELECT district_code, name, area_m2, geometry FROM districts ORDER BY district_code LIMIT 3"
    csv = onemap(districts_home, "query", sql, "--format", "csv")
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.strip().splitlines()
    assert lines[0].replace('"', "") == "district_code,name,area_m2,geometry"
    assert lines[1].startswith('"500101","万州区"') and "POLYGON" in lines[1]
    geojson = json.loads(onemap(districts_home, "query", sql, "--format", "geojson").stdout)
    assert len(geojson["features"]) == 3
    assert geojson["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    rows = json.loads(onemap(districts_home, "query", sql, "--format", "json").stdout)
    assert rows[0]["name"] == "万州区"
    out = tmp_path / "d.parquet"
    assert onemap(districts_home, "query", sql, "--format", "parquet", "--output", str(out)).returncode == 0
    assert pq.read_table(out).num_rows == 3
    table = onemap(districts_home, "query", "SELECT count(*) AS n FROM silver_districts")
    assert "38" in table.stdout


def test_query_is_read_only(districts_home: Path) -> None:
    for sql in ("DELETE FROM districts", "CREATE TABLE x AS SELECT 1", "SELECT 1; DROP VIEW districts",
                "COPY districts TO '/tmp/x.csv'"):
        result = onemap(districts_home, "query", sql)
        assert result.returncode == 1, sql
        assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
    assert "38" in onemap(districts_home, "query", "SELECT count(*) FROM districts").stdout


def test_errors_are_one_line_with_traceback_only_under_debug(home: Path) -> None:
    broken = home / "landing" / "broken.geojson"
    broken.write_text("{not json", encoding="utf-8")
    plain = onemap(home, "ingest", str(broken), "--feed", "chongqing_datav_districts")
    assert plain.returncode == 1
    assert "broken.geojson: invalid JSON" in plain.stderr
    assert "Traceback" not in plain.stderr
    unknown = onemap(home, "ingest", str(broken))
    assert unknown.returncode == 1 and "no feed contract covers this file" in unknown.stderr
    debug = onemap(home, "--debug", "query", "SELECT * FROM nosuch")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "nosuch" in debug.stderr
