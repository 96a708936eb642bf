"""Write–audit–publish of the one map, without Dagster: dbt builds the marts, the gates audit them, and only
a build whose every blocking gate passes is published to gold/.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lake.duckdb_engine import connect
from lake.errors import OnemapError
from lake.publish import publish
from lake.releases import BLOCKED, current_release, log_build
from quality.gates import blocking_failures, run_gates
from quality.report import write_report
from quality.results import RuleResult
from lake.transforms_project import build_database, keep_run_results, prepare_dbt_build, run_dbt, target_dir


class GateFailed(OnemapError):
    """A blocking gate failed: nothing was published."""

    def __init__(self, build_id: str, failures: list[RuleResult], results: list[RuleResult], report: Path) -> None:
        self.build_id = build_id
        self.failures = failures
        self.results = results
        lines = "; ".join(r.summary() for r in failures)
        super().__init__(f"build {build_id} not published, blocking gates failed: {lines}. Fix the deliveries "
                         f"named (or their feed contracts) and deliver again; report: {report}")


@dataclass(frozen=True)
class PublishOutcome:
    build_id: str
    versions: dict[str, int]  # the release's gold versions
    results: list[RuleResult]
    report: Path


def new_build_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:8]


ENGINES = ("duckdb", "spark")


def build_marts(districts: list[str] | None = None, engine: str = "duckdb") -> Path:
    """Build the marts and their tests into the build database; returns the run_results.json the gates read.

    engine: `duckdb` (dbt-duckdb, the default) or `spark` (lake.spark_engine; always the whole region).
    """
    if engine not in ENGINES:
        raise OnemapError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    if engine == "spark":
        from lake.spark_engine.build import build_marts_on_spark

        return build_marts_on_spark()
    run_dbt(prepare_dbt_build(districts))
    return keep_run_results(target_dir())


def audit_and_publish(build_id: str, run_results: Path, districts: list[str] | None = None) -> PublishOutcome:
    """Run the gates; publish when none blocks, else log the blocked build and raise GateFailed."""
    results = run_gates(build_database(), run_results, districts)
    report = write_report(results, build_id)
    log = [r.as_log() for r in results]
    failures = blocking_failures(results)
    if failures:
        served = current_release()
        log_build(build_id, BLOCKED, districts, served.versions if served is not None else {}, log)
        raise GateFailed(build_id, failures, results, report)
    con = connect(str(build_database()))
    try:
        release = publish(con, build_id, districts, log)
    finally:
        con.close()
    return PublishOutcome(build_id, release.versions, results, report)


def run_one_map(districts: list[str] | None = None, engine: str = "duckdb") -> PublishOutcome:
    """The whole write–audit–publish of one build (whole region, or the given districts), on either engine."""
    return audit_and_publish(new_build_id(), build_marts(districts, engine), districts)
