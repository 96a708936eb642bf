"""Survey deliveries to silver on Spark: a bulk (re)load of one feed table from every delivery in landing/.

Each delivery file is one Spark task that runs the ingest's own code on it — the reader, CRS resolution and
reprojection, the validation rules and the ellipsoidal area (`lake.ingest.build_silver_rows`, vectorised over the
file's rows) — and returns its rows as Arrow. The driver then writes, as in `lake.ingest`, quarantine, silver and
bronze (each one commit through `lake.spark.write_delta`, replacing the table: the deliveries are the whole
truth of a bulk load) and one ingest-log row per delivery. Rows failing a rule reach quarantine with the rule id
and reason, exactly as on the default path; a file that cannot be read fails the load and nothing is written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from lake import delta_io
from lake.bronze import Lineage, delivered_rows
from lake.contracts import get_contract
from lake.discovery import landing_deliveries
from lake.errors import OnemapError
from lake.ingest import _source_crs, build_silver_rows, source_uri_of
from lake.readers import read_delivery
from lake.readers.raw_batch import delivery_sha256
from lake.registry import BRONZE, INGEST_LOG, QUARANTINE, SILVER, TableSpec
from lake.spark import write_delta

_VERDICT = [pa.field("_rule_id", pa.string()), pa.field("_reason", pa.string())]


def _combined_schema(table: str) -> pa.Schema:
    """Silver columns + the verdict + the delivered (bronze) columns: one row per delivered feature."""
    bronze_only = [f for f in BRONZE[table].schema if f.name not in SILVER[table].schema.names]
    return pa.schema([*SILVER[table].schema, *_VERDICT, *bronze_only])


def delivery_rows(source: str, feed: str, batch_id: str, started: datetime) -> pa.Table:
    """Everything one delivery contributes, computed by the default ingest's functions (runs on an executor)."""
    contract = get_contract(feed)
    batch = read_delivery(source, contract)
    crs = _source_crs(batch, contract)
    lineage = Lineage(feed, source, delivery_sha256_of(source), batch_id, started)
    delivered = delivered_rows(batch, lineage, crs.label)
    silver, verdicts = build_silver_rows(batch, contract, crs, delivered)
    schema = _combined_schema(contract.table)
    columns = {f.name: silver.column(f.name) for f in SILVER[contract.table].schema}
    columns |= {"_rule_id": pa.array(verdicts.rule_id.tolist(), pa.string()),
                "_reason": pa.array(verdicts.reason.tolist(), pa.string())}
    columns |= {f.name: delivered.column(f.name) for f in schema if f.name not in columns}
    return pa.table([columns[f.name].cast(f.type) for f in schema], schema=schema)


def delivery_sha256_of(source: str) -> str:
    return delivery_sha256(Path(source))


@dataclass(frozen=True)
class BulkLoad:
    table: str
    deliveries: int
    rows_silver: int
    rows_quarantined: int


def ingest_table_on_spark(spark: SparkSession, table: str) -> BulkLoad:
    """Reload silver/<table> (with its quarantine and bronze) from all its deliveries in landing/, on Spark."""
    deliveries = landing_deliveries(table)
    if not deliveries:
        raise OnemapError(f"no deliveries for {table} in landing/: nothing to load")
    started = datetime.now(UTC)
    batch_ids = {source_uri_of(d.source): f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}" for d in deliveries}
    files = spark.createDataFrame([(uri, d.contract.feed, batch_ids[uri]) for d in deliveries
                                   for uri in [source_uri_of(d.source)]],
                                  "source string, feed string, batch_id string").repartition(len(deliveries))
    schema = _combined_schema(table)

    def compute(batches):
        for batch in batches:
            for source, feed, batch_id in zip(*(batch.column(c).to_pylist() for c in ("source", "feed",
                                                                                         "batch_id"))):
                yield from delivery_rows(source, feed, batch_id, started).to_batches()

    rows = files.mapInArrow(compute, from_arrow_schema(schema)).persist()
    try:
        counts = {r["_source_uri"]: (r["rows"], r["silver"]) for r in rows.groupBy("_source_uri").agg(
            F.count("*").alias("rows"), F.count_if(F.col("_rule_id").isNull()).alias("silver")).collect()}
        passed = F.col("_rule_id").isNull()
        _write(spark, QUARANTINE[table], rows.where(~passed).withColumnRenamed("_rule_id", "rule_id")
               .withColumnRenamed("_reason", "reason"))
        _write(spark, SILVER[table], rows.where(passed))
        _write(spark, BRONZE[table], rows)
    finally:
        rows.unpersist()
    _log(deliveries, batch_ids, counts, started)
    total, silver = (sum(c[i] for c in counts.values()) for i in (0, 1))
    return BulkLoad(table, len(deliveries), silver, total - silver)


def _write(spark: SparkSession, spec: TableSpec, frame) -> None:
    write_delta(spark, spec, frame.select(*spec.schema.names), mode="overwrite")


def _log(deliveries, batch_ids: dict[str, str], counts: dict[str, tuple[int, int]], started: datetime) -> None:
    rows = []
    for d in deliveries:
        uri = source_uri_of(d.source)
        total, silver = counts.get(uri, (0, 0))
        rows.append({"batch_id": batch_ids[uri], "feed": d.contract.feed, "table_name": d.contract.table,
                     "source_uri": uri, "source_sha256": delivery_sha256_of(uri),
                     "status": "succeeded", "message": "bulk load on Spark", "rows_read": total,
                     "rows_silver": silver, "rows_quarantined": total - silver, "started_at": started,
                     "finished_at": datetime.now(UTC)})
    delta_io.append(INGEST_LOG, pa.Table.from_pylist(rows, schema=INGEST_LOG.schema))

