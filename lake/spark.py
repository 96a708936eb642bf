"""Spark access to the lake's Delta tables: one function pair, `read_delta` / `write_delta`.

With delta-spark's jars on the classpath Spark reads and writes Delta natively (`format("delta")`). Without them
(they come from Maven, which this environment cannot reach) both go through delta-rs:

- read: list the snapshot's active files with their partition values and let Spark read exactly those Parquet
  files — never a directory listing, which would also pick up files of removed or uncommitted versions;
- write: Spark writes Parquet into a fresh `spark-<uuid>/` folder inside the table (Hive-style partition folders,
  the registry's schema, no statistics on blobs), then the driver reads the files' footers and commits them as
  add actions in one Delta transaction (`DeltaTable.create_write_transaction`). A job killed before that commit
  leaves only unreferenced files: the table is unchanged and a re-run writes a new folder and commits it.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections import defaultdict
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.transaction import AddAction
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

from lake.delta_io import ensure_table
from lake.errors import OnemapError
from lake.registry import TableSpec
from lake.releases import pinned_version
from lake.settings import REPO_ROOT

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def spark_session(app_name: str = "onemap", cores: int | None = None) -> SparkSession:
    """A SparkSession: `local[*]` (or `local[cores]`) by default, `ONEMAP_SPARK_MASTER` for a cluster.

    Executors run this venv's Python with the repository on PYTHONPATH, which is what a standalone cluster on
    this machine (infra/spark) needs; on a multi-host cluster install the project on every worker instead.
    """
    cores = cores or int(os.environ.get("ONEMAP_SPARK_CORES", "0")) or None
    master = os.environ.get("ONEMAP_SPARK_MASTER") or (f"local[{cores}]" if cores else "local[*]")
    python = os.environ.get("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_PYTHON", python)
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", os.environ.get("ONEMAP_SPARK_PARTITIONS", "8"))
               .config("spark.driver.memory", os.environ.get("ONEMAP_SPARK_DRIVER_MEMORY", "2g"))
               .config("spark.executor.memory", os.environ.get("ONEMAP_SPARK_EXECUTOR_MEMORY", "2g"))
               .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "20000")
               .config("spark.pyspark.python", python)
               .config("spark.executorEnv.PYTHONPATH", str(REPO_ROOT)))
    if cores and not master.startswith("local"):
        builder = builder.config("spark.cores.max", str(cores))
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master != master:
        active.stop()  # one SparkContext per process: switching master (local <-> cluster) needs a new one
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("ONEMAP_SPARK_LOG_LEVEL", "ERROR"))
    return spark


def has_delta_spark(spark: SparkSession) -> bool:
    try:
        spark._jvm.java.lang.Class.forName("io.delta.sql.DeltaSparkSessionExtension")  # noqa: SLF001
        return True
    except Exception:  # noqa: BLE001 - py4j raises its own error type for a missing class
        return False


# --- read ----------------------------------------------------------------------------------------------------
def read_delta(spark: SparkSession, spec: TableSpec, version: int | None = None) -> DataFrame:
    """The table's snapshot as a Spark DataFrame with the registry's column order.

    Without `version`, gold is read at the current release's version (never its head), other tables at their latest.
    """
    version = pinned_version(spec) if version is None else version
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
    for action in _add_actions(table):
        values = tuple(action.get(f"partition.{c}") for c in partition_columns)
        files_by_partition[values].append(f"{root}/{unquote(action['path'])}")
    schema = from_arrow_schema(spec.schema)
    in_files = StructType([f for f in schema.fields if f.name not in partition_columns])
    frames = []
    for values, files in sorted(files_by_partition.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
        frame = spark.read.schema(in_files).parquet(*files)  # the registry's schema: no footer inference job
        for column, value in zip(partition_columns, values):
            frame = frame.withColumn(column, F.lit(value).cast("string"))
        frames.append(frame.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields]))
    if not frames:
        return spark.createDataFrame([], schema)
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def _add_actions(table: DeltaTable) -> list[dict]:
    return pa.table(table.get_add_actions(flatten=True)).to_pylist()


# --- write ---------------------------------------------------------------------------------------------------
def check_schema(spec: TableSpec, frame: DataFrame) -> None:
    """Refuse a frame whose columns or types differ from the registry's (and the existing table's) schema."""
    expected = {f.name: f.dataType for f in from_arrow_schema(spec.schema).fields}
    delivered = {f.name: f.dataType for f in frame.schema.fields}
    problems = []
    if missing := [c for c in expected if c not in delivered]:
        problems.append(f"missing columns {missing}")
    if extra := [c for c in delivered if c not in expected]:
        problems.append(f"unexpected columns {extra}")
    changed = [f"{c}: delivered {delivered[c].simpleString()}, table {t.simpleString()}"
               for c, t in expected.items() if c in delivered and delivered[c] != t]
    if changed:
        problems.append("type changes " + "; ".join(changed))
    table = _open(spec)
    if table is not None:
        table_columns = [f.name for f in pa.schema(table.schema().to_arrow())]
        if table_columns != list(expected):
            problems.append(f"the Delta table at {spec.uri} has columns {table_columns}, the registry {list(expected)}")
    if problems:
        raise OnemapError(f"schema drift writing {spec.key}: {'; '.join(problems)}. Nothing was written; map the "
                          f"delivery to the table's schema (lake/registry.py) or migrate the table first")


def write_delta(spark: SparkSession, spec: TableSpec, frame: DataFrame, mode: str = "append",
                partitions: list[str] | None = None) -> int:
    """Write `frame` to the table as one Delta commit and return the new version.

    mode: `append`, or `overwrite` — the whole table, or with `partitions` only those values of the table's
    (single) partition column. The frame must have the registry's columns and types (see `check_schema`).
    """
    if mode not in ("append", "overwrite"):
        raise ValueError(f"mode must be append or overwrite, not {mode!r}")
    check_schema(spec, frame)
    if partitions is not None and len(spec.partition_by) != 1:
        raise OnemapError(f"{spec.key}: partition overwrite needs one partition column, the table has "
                          f"{list(spec.partition_by)}")
    ensure_table(spec)
    columns = [f.name for f in spec.schema]
    frame = frame.select(*columns)
    if has_delta_spark(spark):
        return _write_native(spec, frame, mode, partitions)
    return _write_through_delta_rs(spec, frame, mode, partitions)


def _write_native(spec: TableSpec, frame: DataFrame, mode: str, partitions: list[str] | None) -> int:
    writer = frame.write.format("delta").mode(mode)
    if partitions is not None:
        values = ", ".join("'" + p.replace("'", "''") + "'" for p in partitions)
        writer = writer.option("replaceWhere", f"{spec.partition_by[0]} in ({values})")
    if spec.partition_by:
        writer = writer.partitionBy(*spec.partition_by)
    writer.save(spec.uri)
    return DeltaTable(spec.uri).version()


def _write_through_delta_rs(spec: TableSpec, frame: DataFrame, mode: str, partitions: list[str] | None) -> int:
    folder = f"spark-{uuid.uuid4().hex}"
    writer = frame.write.mode("errorifexists").option("compression", "snappy")
    for field in spec.schema:  # no min/max statistics on WKB and other blobs, as delta_io.writer_properties
        if pa.types.is_binary(field.type):
            writer = writer.option(f"parquet.column.statistics.enabled#{field.name}", "false")
    if spec.partition_by:
        writer = writer.partitionBy(*spec.partition_by)
    writer.parquet(f"{spec.uri.rstrip('/')}/{folder}")
    actions = _actions_for_folder(spec, folder)
    table = DeltaTable(spec.uri)
    filters = [(spec.partition_by[0], "in", list(partitions))] if partitions is not None else None
    table.create_write_transaction(actions, mode=mode, schema=spec.schema,
                                   partition_by=list(spec.partition_by) or None, partition_filters=filters)
    return DeltaTable(spec.uri).version()


def _actions_for_folder(spec: TableSpec, folder: str) -> list[AddAction]:
    """One add action per Parquet file Spark wrote into `folder`, with partition values and statistics."""
    filesystem, root = pafs.FileSystem.from_uri(spec.uri)
    infos = filesystem.get_file_info(pafs.FileSelector(f"{root.rstrip('/')}/{folder}", recursive=True))
    actions = []
    for info in infos:
        relative = info.path[len(root.rstrip("/")) + 1:]
        if info.type != pafs.FileType.File or not relative.endswith(".parquet") or "/_" in relative:
            continue
        values = {}
        for part in relative.split("/")[1:-1]:
            name, _, value = part.partition("=")
            values[name] = None if value == HIVE_NULL else unquote(value)
        with filesystem.open_input_file(info.path) as handle:
            metadata = pq.ParquetFile(handle).metadata
        actions.append(AddAction(relative, info.size, values, int(info.mtime.timestamp() * 1000), True,
                                 json.dumps(_statistics(metadata))))
    return actions


def _statistics(metadata: pq.FileMetaData) -> dict:
    """Delta file statistics (numRecords, min/max of numbers and strings, null counts) from a Parquet footer."""
    mins: dict = {}
    maxs: dict = {}
    nulls: dict = defaultdict(int)
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            name, stats = column.path_in_schema, column.statistics
            if stats is None:
                continue
            if stats.null_count is not None:
                nulls[name] += stats.null_count
            if not stats.has_min_max or stats.logical_type.type not in ("NONE", "STRING", "INT"):
                continue  # timestamps, blobs: no min/max (Delta wants ISO text for timestamps; blobs skip nothing)
            low, high = stats.min, stats.max
            if isinstance(low, float) and not (low == low and high == high):
                continue
            mins[name] = low if name not in mins else min(mins[name], low)
            maxs[name] = high if name not in maxs else max(maxs[name], high)
    return {"numRecords": metadata.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": dict(nulls)}


def _open(spec: TableSpec) -> DeltaTable | None:
    try:
        return DeltaTable(spec.uri)
    except Exception:  # noqa: BLE001 - not created yet
        return None
