"""`--engine spark`: build the one-map marts with Spark into the same build database the gates audit.

dbt still builds what is cheap and not overlay-heavy — seeds, the staging views the gates query, int_land_classes
and imagery_coverage (a union of a region's few scene footprints per district and month) — and runs the data
tests of every mart; Spark computes land_change, control_line_conflicts, one_map_parcels and district_indicators.
Their Parquet output is loaded into the build database as tables of the marts' names, so the gates and the
publish step (quality.wap, lake.publish) run unchanged, whatever engine built them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lake.duckdb_engine import connect
from lake.settings import current_settings
from lake.spark import spark_session
from lake.spark_engine.marts import SPARK_MARTS, EngineOptions, SparkMarts
from lake.transforms_project import build_database, dbt_vars, ensure_sources, run_dbt, target_dir

DBT_BUILT = ("resource_type:seed", "staging", "int_land_classes", "imagery_coverage")


def spark_build_folder() -> Path:
    return current_settings().home / "spark_build"


def build_marts_on_spark(options: EngineOptions = EngineOptions()) -> Path:
    """Build every mart (Spark for the overlay-heavy ones, dbt for the rest) and return the merged run results."""
    ensure_sources()
    variables = ["--vars", json.dumps(dbt_vars())]
    run_dbt(["build", *variables, "--select", *DBT_BUILT, "--full-refresh"])
    first = json.loads((target_dir() / "run_results.json").read_text(encoding="utf-8"))
    folder = spark_build_folder()
    shutil.rmtree(folder, ignore_errors=True)
    spark = spark_session("onemap-build")
    marts = SparkMarts(spark, folder, options).build()
    load_into_build_database(marts)
    run_dbt(["test", *variables, "--select", *(spec.name for spec in SPARK_MARTS)])
    second = json.loads((target_dir() / "run_results.json").read_text(encoding="utf-8"))
    merged = {**second, "results": first["results"] + second["results"]}
    kept = build_database().with_suffix(".run_results.json")
    kept.write_text(json.dumps(merged), encoding="utf-8")
    return kept


def load_into_build_database(marts: dict[str, Path]) -> None:
    """Replace the marts in the build database by the Spark output (one transaction)."""
    con = connect(str(build_database()))
    try:
        con.execute("begin")
        for name, folder in marts.items():
            con.execute(f"create or replace table {name} as select * from read_parquet('{folder}/*.parquet')")
        con.execute("commit")
    finally:
        con.close()
