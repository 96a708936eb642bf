"""`onemap build`: materialize assets in-process against the instance in $ONEMAP_HOME/dagster.

Unpartitioned assets run first, then all partitioned ones in one run over the whole partition range (their
single-run backfill policy), so the runs show in the Dagster UI like any other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import dagster as dg

from lake.errors import OnemapError
from lake.settings import current_settings


@dataclass(frozen=True)
class BuildOutcome:
    run_ids: list[str]
    materialized: list[str]
    failed_checks: list[str]


def dagster_home() -> str:
    home = current_settings().home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    if not yaml_path.exists():
        yaml_path.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return str(home)


def build(select: str | None = None, engine: str = "duckdb") -> BuildOutcome:
    """Materialize the selected assets; `engine` picks who builds the one-map marts (duckdb | spark)."""
    from orchestration.definitions import defs
    from orchestration.one_map_assets import OneMapEngine

    dagster_home()
    graph = defs.resolve_asset_graph()
    try:
        selection = dg.AssetSelection.from_string(select) if select else dg.AssetSelection.all()
        keys = selection.resolve(graph)
    except Exception as exc:  # dagster raises several types for a bad selection string
        raise OnemapError(f"bad --select {select!r}: {exc}") from exc
    if not keys:
        raise OnemapError(f"--select {select!r} matches no asset")
    assets = list(defs.assets or [])
    checks = list(defs.asset_checks or [])
    resources = {**dict(defs.resources or {}), "one_map_engine": OneMapEngine(engine=engine)}
    partitioned = [k for k in keys if graph.get(k).partitions_def is not None]
    plain = [k for k in keys if k not in partitioned]
    outcome = BuildOutcome([], [], [])
    with dg.DagsterInstance.get() as instance:
        if plain:
            _run(assets + checks, plain, instance, {}, outcome, resources)
        if partitioned:
            partition_keys = graph.get(partitioned[0]).partitions_def.get_partition_keys()
            tags = {"dagster/asset_partition_range_start": partition_keys[0],
                    "dagster/asset_partition_range_end": partition_keys[-1]}
            _run(assets + checks, partitioned, instance, tags, outcome, resources)
    return outcome


def _run(definitions: list, keys: list[dg.AssetKey], instance: dg.DagsterInstance, tags: dict[str, str],
         outcome: BuildOutcome, resources: dict) -> None:
    result = dg.materialize(definitions, selection=keys, instance=instance, tags=tags, raise_on_error=False,
                            resources=resources,
                            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}})
    outcome.run_ids.append(result.run_id)
    for event in result.get_asset_materialization_events():
        if (key := event.asset_key.to_user_string()) not in outcome.materialized:
            outcome.materialized.append(key)
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            outcome.failed_checks.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        reasons = "; ".join(f"{e.step_key}: {e.step_failure_data.error.message.strip() if e.step_failure_data.error else ''}"
                            for e in failures[:5])
        raise OnemapError(f"build failed (run {result.run_id}): {reasons or 'see the Dagster UI'}")
