"""What is in the lake: per table its layer, Delta version, rows, last batch and quarantined rows; history."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import pyarrow.compute as pc

from lake import delta_io
from lake.registry import ALL_TABLES, INGEST_LOG, QUARANTINE, TableSpec, get_table


@dataclass(frozen=True)
class TableStatus:
    table: str
    layer: str
    version: int | None
    rows: int
    last_batch: str | None
    last_ingested_at: str | None
    quarantined_rows: int | None

    def as_dict(self) -> dict:
        return asdict(self)


def _last_batches() -> dict[str, tuple[str, datetime]]:
    """Latest succeeded batch per silver table name, from the ingest log."""
    log = delta_io.read_table(INGEST_LOG, columns=["batch_id", "table_name", "status", "finished_at"])
    log = log.filter(pc.equal(log.column("status"), "succeeded"))
    latest: dict[str, tuple[str, datetime]] = {}
    for row in log.sort_by([("finished_at", "ascending")]).to_pylist():
        latest[row["table_name"]] = (row["batch_id"], row["finished_at"])
    return latest


def table_statuses(include_empty: bool = False) -> list[TableStatus]:
    latest = _last_batches()
    counts: dict[str, int] = {}
    out: list[TableStatus] = []
    for spec in ALL_TABLES:
        table = delta_io.open_table(spec)
        counts[spec.key] = delta_io.row_count(table) if table is not None else 0
    for spec in ALL_TABLES:
        table = delta_io.open_table(spec)
        if table is None and not include_empty:
            continue
        batch = latest.get(spec.name) if spec.layer in ("bronze", "silver", "quarantine") else None
        quarantine = QUARANTINE.get(spec.name) if spec.layer == "silver" else None
        out.append(TableStatus(
            table=spec.key, layer=spec.layer, version=table.version() if table is not None else None,
            rows=counts[spec.key], last_batch=batch[0] if batch else None,
            last_ingested_at=batch[1].isoformat(timespec="seconds") if batch else None,
            quarantined_rows=counts[quarantine.key] if quarantine else None,
        ))
    return out


def table_history(key: str) -> tuple[TableSpec, list[dict]]:
    """Every Delta version of a table (newest first): version, time, operation, rows added/removed."""
    spec = get_table(key)
    table = delta_io.open_table(spec)
    if table is None:
        return spec, []
    rows = []
    for entry in table.history():
        metrics = entry.get("operationMetrics") or {}
        rows.append({
            "version": entry.get("version"),
            "timestamp": datetime.fromtimestamp(entry["timestamp"] / 1000).isoformat(timespec="seconds"),
            "operation": entry.get("operation"),
            "rows_written": metrics.get("num_added_rows", metrics.get("num_target_rows_inserted",
                                                                       metrics.get("num_output_rows"))),
            "rows_removed": metrics.get("num_removed_rows", metrics.get("num_target_rows_deleted")),
            "predicate": (entry.get("operationParameters") or {}).get("predicate"),
        })
    return spec, rows
