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
from lake.errors import OnemapError
from lake.registry import GOLD_TABLES, PUBLISH_LOG, TableSpec


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


def latest_published() -> tuple[str, dict[str, int]] | None:
    """The build id and gold table versions of the latest published build (None before the first publish).

    Readers that must see one consistent map (the twin, department exports) read gold at these versions rather
    than at each table's head, which a build in progress may already have moved.
    """
    log = delta_io.read_table(PUBLISH_LOG, columns=["build_id", "status", "table_versions", "published_at"]) \
        if delta_io.open_table(PUBLISH_LOG) is not None else None
    rows = [r for r in (log.to_pylist() if log is not None else []) if r["status"] == "published"]
    if not rows:
        return None
    latest = max(rows, key=lambda r: r["published_at"])
    versions = {k: v for k, v in json.loads(latest["table_versions"]).items() if v is not None}
    return latest["build_id"], versions


def read_published(spec: TableSpec, columns: list[str] | None = None) -> pa.Table:
    """A gold table as of the latest published build; a clear error when nothing has been published yet."""
    published = latest_published()
    if published is None or spec.key not in published[1]:
        raise OnemapError(f"{spec.key} has no published version yet: run `onemap build` (or `onemap demo`) first")
    return delta_io.read_table(spec, columns=columns, version=published[1][spec.key])
