"""Publish the audited marts to gold/ (delta-rs) and record every build in meta/publish_log.

All gold tables of one build are written, then one publish-log row names their versions: that row is the
commit point of the build (Delta has no multi-table transaction), and readers who need a consistent map read
the versions of the latest `published` row. A blocked build writes only its log row: gold stays as it was.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import duckdb
import pyarrow as pa

from lake import delta_io
from lake.registry import GOLD_TABLES, PUBLISH_LOG


def gold_versions() -> dict[str, int | None]:
    return {spec.key: (t.version() if (t := delta_io.open_table(spec)) is not None else None) for spec in GOLD_TABLES}


def _district_predicate(districts: list[str]) -> str:
    return "district_code in (" + ", ".join(f"'{d}'" for d in districts) + ")"


def publish_marts(con: duckdb.DuckDBPyConnection, districts: list[str] | None) -> dict[str, int | None]:
    """Write each mart to its gold table: whole tables, or only the rebuilt districts' partitions."""
    for spec in GOLD_TABLES:
        incremental = bool(districts) and "district_code" in spec.partition_by
        where = f"where {_district_predicate(districts)}" if incremental else ""
        data = con.sql(f"select * from {spec.name} {where}").to_arrow_table()
        delta_io.overwrite(spec, data, _district_predicate(districts) if incremental else None)
    return gold_versions()


def log_build(build_id: str, status: str, districts: list[str] | None, versions: dict[str, int | None],
              gate_results: list[dict]) -> None:
    row = {"build_id": build_id, "status": status, "districts": ",".join(districts or []) or "all",
           "table_versions": json.dumps(versions), "gate_results": json.dumps(gate_results, ensure_ascii=False,
                                                                               default=str),
           "published_at": datetime.now(timezone.utc)}
    delta_io.append(PUBLISH_LOG, pa.Table.from_pylist([row], schema=PUBLISH_LOG.schema))
