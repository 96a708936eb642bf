"""Asset checks for the ingest rules on every feed table (blocking where the severity is error)."""


from collections.abc import Callable

import dagster as dg

from lake import silver_checks
from lake.registry import FEED_TABLES, TableSpec
from orchestration.feed_assets import asset_key

CHECKS: tuple[tuple[Callable[[TableSpec], silver_checks.CheckOutcome], dg.AssetCheckSeverity, bool], ...] = (
    (silver_checks.primary_key_unique, dg.AssetCheckSeverity.ERROR, True),
    (silver_checks.geometry_valid_in_region, dg.AssetCheckSeverity.ERROR, True),
    (silver_checks.no_quarantined_rows, dg.AssetCheckSeverity.WARN, False),
)


def _check(spec: TableSpec, fn: Callable, severity: dg.AssetCheckSeverity, blocking: bool) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset_key(spec), name=fn.__name__, blocking=blocking, description=fn.__doc__)
    def _run() -> dg.AssetCheckResult:
        outcome = fn(spec)
        return dg.AssetCheckResult(
            passed=outcome.passed, severity=severity, description=outcome.description,
            metadata={"failing_rows": outcome.failing_rows, "samples": dg.MetadataValue.json(outcome.samples)})

    return _run


FEED_CHECKS = [_check(spec, fn, sev, blocking) for spec in FEED_TABLES for fn, sev, blocking in CHECKS]
