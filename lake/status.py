"""What is in the lake: per table its layer, Delta version, rows, last batch and quarantined rows; history.

Gold is shown as readers see it: at the current release's versions, with the head version beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import pyarrow.compute as pc
from deltalake import DeltaTable

from lake import delta_io
from lake.registry import ALL_TABLES, INGEST_LOG, QUARANTINE, TableSpec, get_table
from lake.releases import NotReleased, Release, version_in


@dataclass(frozen=True)
class TableStatus:
    table: str
    layer: str
    version: int | None  # what readers read: gold at the current release's version, other tables at their head
    rows: int
    last_batch: str | None
    last_ingested_at: str | None
    quarantined_rows: int | None
    head_version: int | None  # the latest Delta version (ahead of `version` after a crashed publish or a rollback)
    release: str | None  # gold: the release `version` comes from

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


def _served(spec: TableSpec, head: DeltaTable | None, release: Release | None) -> DeltaTable | None:
    """The snapshot readers see: gold at the release's version (None while unreleased), others at their head."""
    if head is None:
        return None
    try:
        version = version_in(release, spec)
    except NotReleased:
        return None
    return head if version is None or version == head.version() else delta_io.open_table(spec, version)


def table_statuses(release: Release | None, include_empty: bool = False) -> list[TableStatus]:
    """Every lake table as readers see it under `release` (`current_release()`; None: nothing published yet)."""
    latest = _last_batches()
    heads = {spec.key: delta_io.open_table(spec) for spec in ALL_TABLES}
    served = {spec.key: _served(spec, heads[spec.key], release) for spec in ALL_TABLES}
    counts = {key: delta_io.row_count(table) if table is not None else 0 for key, table in served.items()}
    out: list[TableStatus] = []
    for spec in ALL_TABLES:
        head, table = heads[spec.key], served[spec.key]
        if head is None and not include_empty:
            continue
        batch = latest.get(spec.name) if spec.layer in ("bronze", "silver", "quarantine") else None
        quarantine = QUARANTINE.get(spec.name) if spec.layer == "silver" else None
        out.append(TableStatus(
            table=spec.key, layer=spec.layer, version=table.version() if table is not None else None,
            rows=counts[spec.key], last_batch=batch[0] if batch else None,
            last_ingested_at=batch[1].isoformat(timespec="seconds") if batch else None,
            quarantined_rows=counts[quarantine.key] if quarantine else None,
            head_version=head.version() if head is not None else None,
            release=release.release_id if table is not None and spec.layer == "gold" else None,
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
