"""The Spark engine gives the default engine's answers, its tiles count every pair once, its writes are atomic.

Real Spark (local), real Delta tables, real dbt/DuckDB builds and the same gates; no mocks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import shapely

from lake import delta_io
from lake.errors import OnemapError
from lake.registry import GOLD_CONFLICTS, GOLD_TABLES, PARCELS, PUBLISH_LOG
from lake.settings import REPO_ROOT
from tests.conftest import copy_home

pytestmark = pytest.mark.spark

SLIVER_M2 = 1e-3  # overlaps of coincident edges: both engines measure ~0, their noise is not a relative error


def published_versions() -> list[dict[str, int]]:
    """Gold table versions of every published build, oldest first."""
    rows = [r for r in delta_io.read_table(PUBLISH_LOG).to_pylist() if r["status"] == "published"]
    return [json.loads(r["table_versions"]) for r in sorted(rows, key=lambda r: r["published_at"])]


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= max(1e-6 * max(abs(a), abs(b)), SLIVER_M2)
    return a == b


def assert_same_gold(expected: dict[str, int], actual: dict[str, int]) -> None:
    """Same keys in every gold table; every value equal, areas within 1e-6 relative; same conflict geometries."""
    from lake.spark_engine.geometry import geodesic_area_m2

    for spec in GOLD_TABLES:
        rows = [delta_io.read_table(spec, version=v[spec.key]).to_pylist() for v in (expected, actual)]
        keyed = [{tuple(r[k] for k in spec.primary_key): r for r in side} for side in rows]
        assert set(keyed[0]) == set(keyed[1]), (spec.key, set(keyed[0]) ^ set(keyed[1]))
        for key, want in keyed[0].items():
            got = keyed[1][key]
            for column, value in want.items():
                if column == "geometry":
                    areas = geodesic_area_m2(shapely.from_wkb(np.array([value, got[column]], dtype=object)))
                    assert _close(float(areas[0]), float(areas[1])), (spec.key, key, "geometry area", areas)
                else:
                    assert _close(value, got[column]), (spec.key, key, column, value, got[column])


@pytest.fixture(scope="module")
def spark_published(planted_region_published: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted region built again with `--engine spark` through the same gates and publish."""
    from quality.wap import run_one_map

    mp = pytest.MonkeyPatch()
    home = copy_home(planted_region_published, tmp_path_factory.mktemp("spark") / "home", mp)
    try:
        run_one_map(engine="spark")
        yield home
    finally:
        mp.undo()


@pytest.mark.slow  # the default run proves the same on the standalone cluster (tests/test_spark_cluster.py)
def test_spark_engine_publishes_the_same_gold_tables_through_the_same_gates(spark_published: Path,
                                                                             monkeypatch) -> None:
    monkeypatch.setenv("ONEMAP_HOME", str(spark_published))
    builds = published_versions()
    assert len(builds) == 2, "the default build and the Spark build both passed the gates and were published"
    assert_same_gold(builds[0], builds[1])
    log = sorted(delta_io.read_table(PUBLISH_LOG).to_pylist(), key=lambda r: r["published_at"])[-1]
    gates = json.loads(log["gate_results"])
    assert {g["rule"] for g in gates} >= {"DBT_TESTS", "GX_ONE_MAP_PARCELS", "PARCEL_OVERLAP"}
    assert all(g["passed"] for g in gates if g["severity"] == "error")


@pytest.mark.slow
def test_spark_engine_finds_the_planted_conflicts(spark_published: Path, monkeypatch) -> None:
    monkeypatch.setenv("ONEMAP_HOME", str(spark_published))
    found = {(r["rule_id"], r["parcel_id"] or r["building_id"]): r["area_m2"]
             for r in delta_io.read_table(GOLD_CONFLICTS).to_pylist()}
    planted = json.loads((spark_published / "planted.json").read_text(encoding="utf-8"))
    assert sum(len(rows) for rows in planted.values()) >= 10
    for rule, rows in planted.items():
        for row in rows:
            assert (rule, row["id"]) in found, f"{rule}: planted {row['id']} not found by the Spark engine"
            assert found[(rule, row["id"])] == pytest.approx(row["area_m2"], rel=1e-4)


# --- tiles: every pair once ----------------------------------------------------------------------------------
def _overlay(parcels: list[shapely.Geometry], lines: list[shapely.Geometry], tile_degrees: float) -> list[dict]:
    from lake.spark import spark_session
    from lake.spark_engine.overlay import parcel_control_pairs

    spark = spark_session("tiles")
    parcel_rows = pa.table({
        "parcel_id": [f"P{i}" for i in range(len(parcels))], "district_code": ["500101"] * len(parcels),
        "is_construction": [True] * len(parcels), "allowed_in_basic_farmland": [False] * len(parcels),
        "spheroid_area_m2": [float(a) for a in _areas(parcels)], "geometry": shapely.to_wkb(parcels).tolist(),
        **_bbox(parcels)})
    line_rows = pa.table({"line_type": ["ecological_red_line"] * len(lines), "geometry": shapely.to_wkb(lines).tolist(),
                          **_bbox(lines)})
    pairs = parcel_control_pairs(spark.createDataFrame(parcel_rows), spark.createDataFrame(line_rows), tile_degrees)
    return [r.asDict() for r in pairs.collect()]


def _areas(geoms: list[shapely.Geometry]) -> np.ndarray:
    from lake.spark_engine.geometry import geodesic_area_m2

    return geodesic_area_m2(np.array(geoms, dtype=object))


def _bbox(geoms: list[shapely.Geometry]) -> dict[str, list[float]]:
    b = shapely.bounds(np.array(geoms, dtype=object))
    return {"bbox_xmin": b[:, 0].tolist(), "bbox_ymin": b[:, 1].tolist(), "bbox_xmax": b[:, 2].tolist(),
            "bbox_ymax": b[:, 3].tolist()}


def test_a_geometry_spanning_many_tiles_is_counted_once() -> None:
    parcel = shapely.box(106.01, 29.01, 106.93, 29.77)  # spans 4 x 4 tiles of 0.25°
    line = shapely.Polygon([(106.0, 29.0), (107.0, 29.0), (107.0, 29.5), (106.0, 29.9)])  # 4 x 4 tiles too
    pairs = _overlay([parcel], [line], tile_degrees=0.25)
    assert len(pairs) == 1
    assert pairs[0]["overlap_m2"] == pytest.approx(_areas([parcel.intersection(line)])[0], rel=1e-9)
    assert pairs[0]["inside_wkb"] is not None  # a partial overlap keeps its inside part for the conflict


def test_a_parcel_exactly_on_tile_edges_is_counted_once() -> None:
    # a parcel whose bbox is exactly one tile (edges on tile edges), touching 4 tiles by the rule, and lines that
    # cover it, cross its edge, and only touch it along a tile edge
    parcel = shapely.box(106.0, 29.0, 106.25, 29.25)
    cover = shapely.box(105.9, 28.9, 106.3, 29.3)
    across = shapely.box(106.2, 29.1, 106.5, 29.2)
    touching = shapely.box(106.25, 29.0, 106.4, 29.25)
    pairs = _overlay([parcel], [cover, across, touching], tile_degrees=0.25)
    assert len(pairs) == 3, pairs  # one row per (parcel, line) pair that intersects, wherever the tiles cut
    by_area = sorted(p["overlap_m2"] for p in pairs)
    assert by_area[0] == pytest.approx(0.0, abs=1e-6)  # the line along the edge: a pair, no area
    assert by_area[1] == pytest.approx(_areas([parcel.intersection(across)])[0], rel=1e-9)
    assert by_area[2] == pytest.approx(_areas([parcel])[0], rel=1e-12)  # covered: the parcel's own area
    assert sum(p["covered"] for p in pairs) == 1


# --- writes: atomic, schema-checked ---------------------------------------------------------------------------
_WRITER = """
import sys
import pyarrow as pa
from lake.registry import PARCELS
from lake.spark import spark_session, write_delta
from tests.test_spark_engine import parcel_rows
spark = spark_session("killed-writer")
write_delta(spark, PARCELS, spark.createDataFrame(parcel_rows(int(sys.argv[1]), "K")).repartition(40))
"""


def parcel_rows(n: int, prefix: str) -> pa.Table:
    """n small parcels with the silver schema, spread over three districts."""
    i = np.arange(n)
    boxes = shapely.box(106.0 + (i % 500) * 0.001, 29.0 + (i // 500) * 0.001, 106.0008 + (i % 500) * 0.001,
                        29.0008 + (i // 500) * 0.001)
    data = {f.name: pa.nulls(n, f.type) for f in PARCELS.schema}
    data |= {"parcel_id": pa.array([f"{prefix}{k:07d}" for k in i]), "survey_year": pa.array([2023] * n, pa.int32()),
             "district_code": pa.array(np.array(["500101", "500102", "500103"])[i % 3]),
             "land_class_code": pa.array(["0101"] * n), "geometry": pa.array(shapely.to_wkb(boxes).tolist()),
             **{k: pa.array(v) for k, v in _bbox(list(boxes)).items()}}
    return pa.table(data, schema=PARCELS.schema)


def _staged_parquet(table_dir: Path) -> list[Path]:
    return [p for p in table_dir.glob("spark-*/**/*.parquet")]


def test_a_killed_spark_write_leaves_the_table_unchanged_and_a_rerun_succeeds(home: Path) -> None:
    from lake.spark import spark_session, write_delta

    spark = spark_session("writes")
    write_delta(spark, PARCELS, spark.createDataFrame(parcel_rows(30, "A")))
    version, rows = delta_io.open_table(PARCELS).version(), delta_io.read_table(PARCELS).num_rows
    table_dir = Path(PARCELS.uri)
    child = subprocess.Popen([sys.executable, "-c", _WRITER, "200000"], cwd=REPO_ROOT,
                             env={**os.environ, "ONEMAP_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    before = set(_staged_parquet(table_dir))
    try:
        deadline = time.monotonic() + 300
        while child.poll() is None and time.monotonic() < deadline and not set(_staged_parquet(table_dir)) - before:
            time.sleep(0.005)
        assert child.poll() is None, "the writer finished before it could be killed mid-write"
        os.killpg(child.pid, signal.SIGKILL)  # the Python driver, its JVM and its Python workers
        child.wait()
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert delta_io.open_table(PARCELS).version() == version
    assert delta_io.read_table(PARCELS).num_rows == rows
    assert set(_staged_parquet(table_dir)) - before, "the killed write left uncommitted files (ignored by readers)"

    write_delta(spark, PARCELS, spark.createDataFrame(parcel_rows(500, "R")))
    assert delta_io.open_table(PARCELS).version() == version + 1
    assert delta_io.read_table(PARCELS).num_rows == rows + 500
    from lake.spark import read_delta
    assert read_delta(spark, PARCELS).count() == rows + 500


def test_schema_drift_is_refused_naming_the_columns_and_nothing_is_written(home: Path) -> None:
    from pyspark.sql import functions as F

    from lake.spark import spark_session, write_delta

    spark = spark_session("writes")
    write_delta(spark, PARCELS, spark.createDataFrame(parcel_rows(10, "A")))
    version, staged = delta_io.open_table(PARCELS).version(), set(_staged_parquet(Path(PARCELS.uri)))
    drifted = spark.createDataFrame(parcel_rows(10, "B")).withColumn("area_m2", F.col("area_m2").cast("string")) \
        .drop("net_area_m2").withColumn("KCMJ", F.lit(1.0))
    with pytest.raises(OnemapError) as error:
        write_delta(spark, PARCELS, drifted)
    message = str(error.value)
    assert "net_area_m2" in message and "KCMJ" in message and "area_m2: delivered string, table double" in message
    assert "Nothing was written" in message
    assert delta_io.open_table(PARCELS).version() == version
    assert set(_staged_parquet(Path(PARCELS.uri))) == staged, "refused before Spark wrote any file"
    assert delta_io.read_table(PARCELS).num_rows == 10


# --- ingest on Spark ------------------------------------------------------------------------------------------
def test_survey_ingest_on_spark_gives_the_default_ingests_silver(planted_region_published: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    from lake.registry import QUARANTINE
    from lake.spark import spark_session
    from lake.spark_engine.ingest import ingest_table_on_spark

    copy_home(planted_region_published, tmp_path / "home", monkeypatch)
    columns = ["parcel_id", "survey_year", "district_code", "land_class_code", "land_class_name", "area_m2",
               "net_area_m2", "geometry", "bbox_xmin", "bbox_ymax", "_source_uri", "_row_number"]
    default = delta_io.read_table(PARCELS, columns=columns).to_pylist()
    quarantined = delta_io.read_table(QUARANTINE["parcels"], columns=["_source_uri", "_row_number", "rule_id"])
    load = ingest_table_on_spark(spark_session("ingest"), "parcels")
    on_spark = delta_io.read_table(PARCELS, columns=columns).to_pylist()
    assert load.rows_silver == len(default) == len(on_spark) and load.deliveries > 1
    by_key = {(r["parcel_id"], r["survey_year"]): r for r in on_spark}
    for row in default:  # same rows, same bytes, same areas; the delivery path differs only by the home's copy
        got = by_key[(row["parcel_id"], row["survey_year"])]
        assert Path(got.pop("_source_uri")).name == Path(row.pop("_source_uri")).name
        assert got == row
    def rules(table: pa.Table) -> list[tuple]:
        return sorted((Path(r["_source_uri"]).name, r["_row_number"], r["rule_id"]) for r in table.to_pylist())
    assert rules(delta_io.read_table(QUARANTINE["parcels"], columns=["_source_uri", "_row_number", "rule_id"])) \
        == rules(quarantined)
