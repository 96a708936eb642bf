"""A silver table reads identically through delta-rs, DuckDB's delta extension and Spark (DESIGN §3)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lake import delta_io
from lake.contracts import get_contract
from lake.duckdb_engine import connect
from lake.ingest import ingest_source
from lake.registry import PARCELS
from tests.survey_files import PARCELS_CONTRACT, good_parcels, write_geojson

COLUMNS = ["parcel_id", "survey_year", "district_code", "land_class_code", "area_m2", "net_area_m2", "geometry",
           "bbox_xmin", "bbox_ymax", "_source_sha256", "_row_number"]


def checksum(rows: list[tuple]) -> str:
    """Order-independent content checksum over the listed columns (bytes as hex, floats by repr)."""
    lines = sorted("|".join(v.hex() if isinstance(v, (bytes, bytearray)) else repr(v) for v in row) for row in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.fixture
def parcels_in_two_districts(home: Path, write_contract) -> None:
    feed = write_contract(PARCELS_CONTRACT)
    features = good_parcels(120)
    for f in features[60:]:
        f["properties"]["ZLDWDM"] = "500103001001"
    ingest_source(write_geojson(home / "landing/parcels/a.geojson", features), get_contract(feed))
    more = good_parcels(40, prefix="Q")
    ingest_source(write_geojson(home / "landing/parcels/b.geojson", more), get_contract(feed))  # a second version


def deltalake_rows() -> list[tuple]:
    table = delta_io.read_table(PARCELS, columns=COLUMNS)
    return list(zip(*(table.column(c).to_pylist() for c in COLUMNS)))


def duckdb_rows() -> list[tuple]:
    con = connect()
    return con.sql(f"SELECT {', '.join(COLUMNS)} FROM delta_scan('{PARCELS.uri}')").fetchall()


@pytest.mark.spark
def test_silver_reads_identically_in_deltalake_duckdb_and_spark(parcels_in_two_districts: None) -> None:
    from lake.spark import read_delta, spark_session

    expected = deltalake_rows()
    assert len(expected) == 160
    assert checksum(duckdb_rows()) == checksum(expected)
    spark = spark_session("engines-agree")
    spark_rows = [tuple(r[c] for c in COLUMNS) for r in read_delta(spark, PARCELS).select(*COLUMNS).collect()]
    assert len(spark_rows) == 160
    assert checksum(spark_rows) == checksum(expected)

