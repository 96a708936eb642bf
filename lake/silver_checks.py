"""Checks on a silver table as it stands, run by Dagster asset checks and the CLI (DuckDB spatial SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lake import delta_io, domain
from lake.duckdb_engine import connect
from lake.registry import QUARANTINE, INGEST_LOG, TableSpec


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    failing_rows: int
    description: str
    samples: list[str] = field(default_factory=list)


def _scan(spec: TableSpec) -> str:
    return f"delta_scan('{spec.uri}')"


def primary_key_unique(spec: TableSpec) -> CheckOutcome:
    """The primary key is unique in the silver table."""
    key = ", ".join(spec.primary_key)
    rows = _query(f"SELECT {key}, count(*) AS n FROM {_scan(spec)} GROUP BY {key} HAVING n > 1 LIMIT 1000")
    return CheckOutcome("primary_key_unique", not rows, len(rows), f"({key}) is unique in {spec.key}",
                        [str(r[:-1]) for r in rows[:10]])


def geometry_valid_in_region(spec: TableSpec) -> CheckOutcome:
    """Every geometry is valid CGCS2000 and lies where the table's region rule says."""
    xmin, ymin, xmax, ymax = domain.REGION_BBOX
    key = " || '/' || ".join(f"CAST({k} AS VARCHAR)" for k in spec.primary_key)
    outside = {
        "within": f"bbox_xmin < {xmin} OR bbox_ymin < {ymin} OR bbox_xmax > {xmax} OR bbox_ymax > {ymax}",
        "intersects": f"bbox_xmax < {xmin} OR bbox_ymax < {ymin} OR bbox_xmin > {xmax} OR bbox_ymin > {ymax}",
        "off": "false",
    }[spec.region_rule]
    rows = _query(f"""
        SELECT {key} FROM {_scan(spec)}
        WHERE geometry IS NULL OR NOT ST_IsValid(ST_GeomFromWKB(geometry)) OR {outside}
        LIMIT 1000""")
    return CheckOutcome("geometry_valid_in_region", not rows, len(rows),
                        f"every geometry of {spec.key} is valid CGCS2000 inside the region", [r[0] for r in rows[:10]])


def no_quarantined_rows(spec: TableSpec) -> CheckOutcome:
    """Warn when the latest delivery of any source sent rows to quarantine (they need the producer's attention)."""
    if delta_io.open_table(QUARANTINE[spec.name]) is None or delta_io.open_table(INGEST_LOG) is None:
        return CheckOutcome("no_quarantined_rows", True, 0, f"no rows of {spec.name} deliveries in quarantine")
    rows = _query(f"""
        SELECT rule_id, count(*) FROM {_scan(QUARANTINE[spec.name])} GROUP BY rule_id ORDER BY 2 DESC""")
    total = sum(r[1] for r in rows)
    return CheckOutcome("no_quarantined_rows", total == 0, total,
                        f"no rows of {spec.name} deliveries in quarantine", [f"{r[0]}: {r[1]}" for r in rows])


def _query(sql: str) -> list[tuple]:
    con = connect()
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()
