"""The one map in Dagster: the dbt project as assets (dagster-dbt) and the gold publish behind blocking gates.

Both are partitioned by district like the feeds: a run over every partition (or the region partition) rebuilds
the whole region; a run over some districts rebuilds only their rows and the region totals. The domain logic is
quality.wap (runs without Dagster); this module only wires it.
"""


import sys
from graphlib import TopologicalSorter
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from lake.contracts import REGION_PARTITION
from lake.domain import district_codes
from quality.catalog import gate_rules
from quality.wap import GateFailed, audit_and_publish, build_marts, new_build_id
from lake.transforms_project import (PROJECT_DIR, build_database, configure_environment, ensure_manifest,
                                     keep_run_results, prepare_dbt_build)
from orchestration.partitions import DISTRICT_PARTITIONS

ONE_MAP_GROUP = "one_map"
GOLD_KEY = dg.AssetKey(["gold", "one_map"])


def rebuilt_districts(partition_keys: list[str]) -> list[str] | None:
    """None (the whole region) when the run covers the region partition or every district."""
    keys = set(partition_keys)
    return None if REGION_PARTITION in keys or keys >= set(district_codes()) else sorted(keys)


class _Translator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props) -> str:
        return ONE_MAP_GROUP


class OneMapEngine(dg.ConfigurableResource):
    """Who builds the marts: `duckdb` (dbt-duckdb, the default) or `spark` (lake.spark_engine, whole region)."""

    engine: str = "duckdb"


@dbt_assets(manifest=ensure_manifest(), dagster_dbt_translator=_Translator(), partitions_def=DISTRICT_PARTITIONS,
            backfill_policy=dg.BackfillPolicy.single_run())
def one_map_marts(context: AssetExecutionContext, dbt: DbtCliResource, one_map_engine: OneMapEngine):
    """dbt build of the transforms project into the build database (the audit area; nothing reaches gold)."""
    configure_environment()
    if one_map_engine.engine != "duckdb":
        build_marts(engine=one_map_engine.engine)
        selected, deps = context.selected_asset_keys, context.assets_def.asset_deps
        for key in TopologicalSorter({k: set(deps.get(k, ())) & selected for k in selected}).static_order():
            yield dg.MaterializeResult(asset_key=key, metadata={"engine": one_map_engine.engine})
        return
    invocation = dbt.cli(prepare_dbt_build(rebuilt_districts(context.partition_keys)), context=context)
    yield from invocation.stream()
    keep_run_results(Path(invocation.target_path))


@dg.asset(
    key=GOLD_KEY, group_name=ONE_MAP_GROUP, deps=list(one_map_marts.keys), partitions_def=DISTRICT_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(), kinds={"deltalake", "python"},
    check_specs=[dg.AssetCheckSpec(r.id, asset=GOLD_KEY, blocking=r.blocking, description=r.description)
                 for r in gate_rules()],
    description="Audit the built marts with every gate of quality/rules.yaml; publish all gold tables only when "
                "no blocking gate fails (write–audit–publish).",
)
def publish_one_map(context: AssetExecutionContext):
    districts = rebuilt_districts(context.partition_keys)
    build_id = new_build_id()
    try:
        outcome = audit_and_publish(build_id, build_database().with_suffix(".run_results.json"), districts)
    except GateFailed as failed:
        for result in failed.results:
            yield _check_result(result)
        raise dg.Failure(description=str(failed)) from None
    for result in outcome.results:
        yield _check_result(result)
    yield dg.MaterializeResult(metadata={"build_id": build_id, "districts": ",".join(districts or []) or "all",
                                         **{k: dg.MetadataValue.int(v) for k, v in outcome.versions.items()
                                            if v is not None}})


def _check_result(result) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=result.rule.id, passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR if result.rule.blocking else dg.AssetCheckSeverity.WARN,
        metadata={"failing": result.failing, "samples": dg.MetadataValue.json(result.samples[:10])})


ONE_MAP_ASSETS = [one_map_marts, publish_one_map]
ONE_MAP_RESOURCES = {"one_map_engine": OneMapEngine(), "dbt": DbtCliResource(project_dir=str(PROJECT_DIR), profiles_dir=str(PROJECT_DIR),
                                           dbt_executable=str(Path(sys.executable).parent / "dbt"))}
