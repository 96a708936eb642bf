"""`onemap query`: read-only SQL over the lake's tables (as DuckDB views) with table/CSV/JSON/GeoJSON/Parquet output.

Gold views read the current release's versions (lake.duckdb_engine.lake_views), never a gold table's head.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import shapely

from lake.duckdb_engine import connect, lake_views
from lake.errors import OnemapError

FORMATS = ("table", "csv", "json", "geojson", "parquet")


def run_query(sql: str) -> pa.Table:
    """Run one read-only statement (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN) over the lake views."""
    con = connect()
    lake_views(con)
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise OnemapError(f"SQL does not parse: {exc}") from exc
    if len(statements) != 1:
        raise OnemapError(f"give exactly one SQL statement (got {len(statements)})")
    kind = statements[0].type
    if kind not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
        raise OnemapError(f"only read-only queries are allowed (SELECT/WITH/EXPLAIN); got {kind.name}")
    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise OnemapError(f"query failed: {exc}") from exc
    finally:
        con.close()


def to_geojson(table: pa.Table, geometry_column: str = "geometry") -> dict:
    """A FeatureCollection; the WKB `geometry` column (if any) becomes each feature's geometry."""
    has_geometry = geometry_column in table.column_names
    geoms = shapely.from_wkb(table.column(geometry_column).to_numpy(zero_copy_only=False)) if has_geometry else None
    props = table.drop_columns([geometry_column]) if has_geometry else table
    features = []
    for i, row in enumerate(props.to_pylist()):
        geometry = json.loads(shapely.to_geojson(geoms[i])) if has_geometry and geoms[i] is not None else None
        features.append({"type": "Feature", "properties": _jsonable(row), "geometry": geometry})
    return {"type": "FeatureCollection", "features": features}


def _jsonable(row: dict) -> dict:
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in row.items()}


def render(table: pa.Table, fmt: str) -> bytes:
    """The result encoded as csv, json (a list of row objects), geojson or parquet; shared with the HTTP API."""
    if fmt == "parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()
    if fmt == "csv":
        sink = pa.BufferOutputStream()
        pacsv.write_csv(printable(table), sink)
        return sink.getvalue().to_pybytes()
    if fmt == "json":
        text = json.dumps([_jsonable(r) for r in table.to_pylist()], ensure_ascii=False, default=str, indent=1)
    elif fmt == "geojson":
        text = json.dumps(to_geojson(table), ensure_ascii=False, default=str)
    else:
        raise OnemapError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    return text.encode("utf-8")


def write_result(table: pa.Table, fmt: str, output: Path | None) -> str | None:
    """Write to `output` (or return text for stdout). Parquet needs an output file."""
    if fmt == "parquet" and output is None:
        raise OnemapError("--format parquet needs --output FILE")
    data = render(table, fmt)
    if output is not None:
        output.write_bytes(data)
        return None
    return data.decode("utf-8")


def printable(table: pa.Table) -> pa.Table:
    """Binary columns (WKB) as WKT text, maps as JSON, so CSV and terminal output stay readable."""
    columns = []
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            wkb = column.to_numpy(zero_copy_only=False)
            try:
                column = pa.array(shapely.to_wkt(shapely.from_wkb(wkb), rounding_precision=7).tolist(), pa.string())
            except shapely.errors.GEOSException:
                column = pa.array([None if v is None else v.hex() for v in wkb], pa.string())
        elif pa.types.is_map(field.type) or pa.types.is_struct(field.type) or pa.types.is_list(field.type):
            column = pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                               for v in column.to_pylist()], pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


