"""Spark access to the lake's Delta tables.

With delta-spark's jars on the classpath Spark reads Delta natively (`format("delta")`). Without them (they come
from Maven, which this environment cannot reach) we read through delta-rs: list the snapshot's active files with
their partition values and let Spark read exactly those Parquet files — never a directory listing, which would
also pick up files of removed or uncommitted versions.
"""

from __future__ import annotations

import os
from collections import defaultdict

import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from lake.errors import OnemapError
from lake.registry import TableSpec


def spark_session(app_name: str = "onemap") -> SparkSession:
    """A SparkSession: `local[*]` by default, `ONEMAP_SPARK_MASTER` for a cluster."""
    master = os.environ.get("ONEMAP_SPARK_MASTER", "local[*]")
    return (SparkSession.builder.master(master).appName(app_name)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "8")
            .getOrCreate())


def has_delta_spark(spark: SparkSession) -> bool:
    try:
        spark._jvm.java.lang.Class.forName("io.delta.sql.DeltaSparkSessionExtension")  # noqa: SLF001
        return True
    except Exception:  # noqa: BLE001 - py4j raises its own error type for a missing class
        return False


def read_delta(spark: SparkSession, spec: TableSpec, version: int | None = None) -> DataFrame:
    """The table's snapshot as a Spark DataFrame with the registry's column order."""
    if has_delta_spark(spark):
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(spec.uri)
    try:
        table = DeltaTable(spec.uri, version=version)
    except Exception as exc:  # noqa: BLE001
        raise OnemapError(f"{spec.key}: not a Delta table at {spec.uri}: {exc}") from exc
    partition_columns = list(table.metadata().partition_columns)
    files_by_partition: dict[tuple, list[str]] = defaultdict(list)
    root = spec.uri.rstrip("/")
    actions = _add_actions(table)
    for action in actions:
        values = tuple(action.get(f"partition.{c}") for c in partition_columns)
        files_by_partition[values].append(f"{root}/{action['path']}")
    schema_columns = [f.name for f in spec.schema]
    frames = []
    for values, files in sorted(files_by_partition.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
        frame = spark.read.parquet(*files)
        for column, value in zip(partition_columns, values):
            frame = frame.withColumn(column, F.lit(value).cast("string"))
        frames.append(frame.select(*schema_columns))
    if not frames:
        return spark.createDataFrame([], from_arrow_schema(spec.schema))
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def _add_actions(table: DeltaTable) -> list[dict]:
    return pa.table(table.get_add_actions(flatten=True)).to_pylist()
