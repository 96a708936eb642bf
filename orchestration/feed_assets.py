"""One Dagster asset per feed table (survey, imagery, CIM); materializing it ingests the table's pending deliveries.

Regional tables are partitioned by district (a delivery's partition comes from its feed contract); a run over a
range of partitions is one run (single-run backfill policy), so a whole-region build does not start 39 runs.
"""

import warnings

import dagster as dg
from dagster import AssetExecutionContext

from lake.batch_ingest import ingest_landing
from lake.ingest import IngestResult
from lake.registry import DISTRICTS, FEED_TABLES, TableSpec
from orchestration.partitions import DISTRICT_PARTITIONS

warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy is beta in Dagster 1.13


def asset_key(spec: TableSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.layer, spec.name])


def _metadata(results: list[IngestResult]) -> dict[str, dg.MetadataValue]:
    done = [r for r in results if r.status == "ingested"]
    return {
        "deliveries_ingested": dg.MetadataValue.int(len(done)),
        "deliveries_skipped": dg.MetadataValue.int(sum(r.status == "skipped" for r in results)),
        "rows_silver": dg.MetadataValue.int(sum(r.rows_silver for r in done)),
        "rows_quarantined": dg.MetadataValue.int(sum(r.rows_quarantined for r in done)),
        "notes": dg.MetadataValue.md("\n".join(f"- `{r.source}`: {r.message}" for r in results if r.message) or "-"),
    }


def feed_asset(spec: TableSpec) -> dg.AssetsDefinition:
    partitioned = "district_code" in spec.partition_by

    @dg.asset(
        key=asset_key(spec), group_name=spec.group, description=spec.description,
        partitions_def=DISTRICT_PARTITIONS if partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        deps=[asset_key(DISTRICTS)] if spec.group == "survey" and spec is not DISTRICTS else [],
        kinds={"deltalake", "python"},
    )
    def _ingest(context: AssetExecutionContext) -> dg.MaterializeResult:
        partitions = context.partition_keys if partitioned else None
        results = ingest_landing(spec.name, partitions,
                                 progress=lambda d, i, n: context.log.info(f"[{i}/{n}] {d.name}") if i < n else None)
        failed = [r for r in results if r.status == "failed"]
        if failed:
            raise dg.Failure(description=f"{len(failed)} deliveries of {spec.name} failed: " +
                             "; ".join(r.message for r in failed[:5]), metadata=_metadata(results))
        return dg.MaterializeResult(metadata=_metadata(results))

    return _ingest


FEED_ASSETS = [feed_asset(spec) for spec in FEED_TABLES]
