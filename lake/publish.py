"""Publish the audited marts to gold/ (delta-rs) as one release (see lake.releases).

Every gold table of the build is committed first, then one `published` row of meta/publish_log names the versions
written: that row is the release's commit point, so readers, who resolve gold through the current release, switch
from the previous map to this one in a single step. A crash before it leaves the previous release served and gold
heads ahead of it; the next publish simply writes newer versions. A blocked build writes only its log row.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from lake import delta_io
from lake.faults import crash_point
from lake.registry import GOLD_TABLES, PUBLISH_LOG, TableSpec
from lake.releases import PUBLISHED, Release, current_release, get_release, log_build, read_gold


def gold_versions() -> dict[str, int | None]:
    """Each gold table's head version (not necessarily released: readers use lake.releases)."""
    return {spec.key: (t.version() if (t := delta_io.open_table(spec)) is not None else None) for spec in GOLD_TABLES}


def _district_predicate(districts: list[str]) -> str:
    return "district_code in (" + ", ".join(f"'{d}'" for d in districts) + ")"


def _write(con: duckdb.DuckDBPyConnection, spec: TableSpec, districts: list[str] | None,
           base: Release | None) -> int:
    """Write one mart to its gold table in one commit (two when the head must first go back to `base`).

    Partial builds replace their districts' partitions on top of the released version, never on a head that a
    crashed publish or a rollback left elsewhere, or the new release would mix in rows no release ever served.
    """
    incremental = bool(districts) and "district_code" in spec.partition_by
    where = f"where {_district_predicate(districts)}" if incremental else ""
    data = con.sql(f"select * from {spec.name} {where}").to_arrow_table()
    released = base.versions.get(spec.key) if base is not None else None
    if incremental and released is None:
        return delta_io.overwrite(spec, data)  # no release has this table: these districts are all of it
    head = delta_io.open_table(spec)
    if incremental and head is not None and head.version() != released:
        head.restore(released)
    return delta_io.overwrite(spec, data, _district_predicate(districts) if incremental else None)


def publish(con: duckdb.DuckDBPyConnection, build_id: str, districts: list[str] | None,
            gate_results: list[dict]) -> Release:
    """Write each mart to gold (whole tables, or the rebuilt districts' partitions), then commit the release."""
    base = current_release()
    versions: dict[str, int | None] = {}
    for spec in GOLD_TABLES:
        versions[spec.key] = _write(con, spec, districts, base)
        crash_point(spec.key)
    log_build(build_id, PUBLISHED, districts, versions, gate_results)
    crash_point(PUBLISH_LOG.key)
    return get_release(build_id)


def latest_published() -> tuple[str, dict[str, int]] | None:
    """(build id, gold versions) of the current release; None before the first publish."""
    release = current_release()
    return (release.build_id, release.versions) if release is not None else None


def read_published(spec: TableSpec, columns: list[str] | None = None) -> pa.Table:
    """A gold table as the current release serves it; NotReleased before its first publish."""
    return read_gold(spec, columns)
