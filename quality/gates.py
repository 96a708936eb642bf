"""Run every one-map gate of the rule catalog on a build (the audit of write–audit–publish)."""

from __future__ import annotations

from pathlib import Path

from lake.duckdb_engine import connect
from quality.dbt_tests import dbt_test_results
from quality.gx_suites import run_gx_suites
from quality.overlaps import parcel_overlaps
from quality.results import RuleResult
from quality.spatial_rules import run_spatial_rules


def run_gates(database: Path, run_results: Path, districts: list[str] | None = None) -> list[RuleResult]:
    """All gate results, in catalog order of kinds: spatial/topology, GX suites, dbt tests."""
    con = connect(str(database))
    try:
        return [*run_spatial_rules(con, districts), parcel_overlaps(con, districts), *run_gx_suites(con, districts),
                dbt_test_results(run_results)]
    finally:
        con.close()


def blocking_failures(results: list[RuleResult]) -> list[RuleResult]:
    return [r for r in results if r.blocks]
