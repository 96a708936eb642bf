"""Ingest one delivery into bronze, silver and quarantine, idempotently and without losing a row.

Order of commits: quarantine and silver replace this source's earlier rows, then bronze, then the ingest log. Delta
has no multi-table transaction, so the batch's commit point is its `succeeded` ingest-log row, written last and
carrying (in its commit's metadata) the version of every table the batch wrote. Until that row commits the batch
did not happen: a crash between table commits leaves tables ahead of the log, and the re-run of the same delivery
(not skipped, since nothing logged it) replaces the same rows again, so nothing duplicates; an error undoes the
batch's commits and logs it `failed`. Each table write is retried while the only conflict is another writer's race.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from lake import delta_io, domain
from lake.bronze import Lineage, delivered_rows
from lake.canonical import Canonical, canonicalize
from lake.contracts import FeedContract
from lake.crs import SourceCrs, resolve_crs
from lake.errors import FeedReadError, OnemapError, escaped_path
from lake.faults import crash_point
from lake.readers import read_delivery
from lake.readers.raw_batch import RawBatch, delivery_sha256, require_utf8_name
from lake.registry import BBOX_COLUMNS, BRONZE, INGEST_LOG, QUARANTINE, SILVER, DISTRICTS, TableSpec
from lake.silver_geometry import SilverGeometry, to_silver_geometry
from lake.validation import (Verdicts, check_dictionary, check_geometry, check_lengths, check_region,
                             check_required, check_unique_key, new_verdicts)


@dataclass(frozen=True)
class IngestResult:
    feed: str
    source: str
    status: str  # ingested | skipped | failed
    batch_id: str
    rows_read: int = 0
    rows_silver: int = 0
    rows_quarantined: int = 0
    message: str = ""


def source_uri_of(source: str | Path) -> str:
    """Local deliveries by absolute path; URLs as they are. Always valid UTF-8 (lineage and the log are text)."""
    text = str(source)
    return escaped_path(text if "://" in text else Path(text).resolve().as_posix())


COMMIT_RETRIES = 8  # attempts of one table write that lost a race to another writer, with jittered backoff
RETRY_BACKOFF_S = 0.05
BATCH_METADATA = "onemap.batch_id"  # keys of the ingest-log commit's metadata: the batch and its table versions
VERSIONS_METADATA = "onemap.table_versions"


def already_ingested(feed: str, sha256: str, source_uri: str, table: TableSpec | None = None) -> bool:
    """Whether this content is what the lake holds for this source: its latest delivery, still in `table`.

    A source's latest succeeded batch decides: the same file delivered again is a no-op, but a file reverted to
    content it had before (A, then A', then A again) is ingested, or silver would keep A'. Content first seen
    under another name is a no-op as before (a copy of a delivered file). With `table` (silver of a feed whose
    sources own their rows), that batch's rows must also still be there: a delivery whose rows another source
    replaced since (same keys) is ingested again, so the lake holds it again.
    """
    log = delta_io.open_table(INGEST_LOG)
    if log is None:
        return False
    rows = delta_io.read_snapshot(log, ["source_uri", "source_sha256", "rows_silver", "finished_at"],
                                  (pc.field("feed") == feed) & (pc.field("status") == "succeeded")).to_pylist()
    own = [r for r in rows if r["source_uri"] == source_uri]
    if own:
        latest = max(own, key=lambda r: r["finished_at"])
        return latest["source_sha256"] == sha256 and _still_held(table, latest)
    return any(r["source_sha256"] == sha256 and _still_held(table, r) for r in rows)


def _still_held(table: TableSpec | None, batch: dict) -> bool:
    """Whether `table` still holds every row the logged batch landed there (by its source and sha256 lineage)."""
    if table is None:
        return True
    silver = delta_io.open_table(table)
    held = 0 if silver is None else delta_io.read_snapshot(
        silver, ["_source_sha256"],
        (pc.field("_source_uri") == batch["source_uri"]) & (pc.field("_source_sha256") == batch["source_sha256"]),
    ).num_rows
    return held == batch["rows_silver"]


@dataclass
class BatchCommits:
    """The table commits of one batch: what its commit point records, and what an error takes back."""

    versions: dict[str, int] = field(default_factory=dict)  # table key -> version after the batch's write
    moved: list[tuple[TableSpec, int]] = field(default_factory=list)  # tables the batch committed to, and at which

    def write(self, spec: TableSpec, write: Callable[[], object]) -> None:
        """One table's commit, retried while it only lost a race to another writer (every batch write replaces
        this source's rows, so repeating it is safe); then the fault-test crash hook."""
        for attempt in range(COMMIT_RETRIES):
            before = delta_io.ensure_table(spec).version()
            try:
                write()
                break
            except delta_io.ConcurrentWriteError:
                if attempt == COMMIT_RETRIES - 1:
                    raise
                time.sleep(min(2.0, RETRY_BACKOFF_S * 2 ** attempt) * random.uniform(0.5, 1.5))
        after = delta_io.open_table(spec).version()
        self.versions[spec.key] = after
        if after > before:
            self.moved.append((spec, after))
        crash_point(spec.key)

    def undo(self) -> list[str]:
        """Restore each table the batch committed to back to the version before that commit, newest first, unless
        another writer committed after it (its rows would go too); returns the tables left with part of the batch."""
        kept = []
        for spec, after in reversed(self.moved):
            table = delta_io.open_table(spec)
            try:
                if table is None or table.version() != after:
                    raise OnemapError("moved on")
                table.restore(after - 1)
            except Exception:  # noqa: BLE001 - a failed undo is reported; the re-run replaces the same rows
                kept.append(spec.key)
        return kept


def ingest_source(source: str | Path, contract: FeedContract) -> IngestResult:
    """Ingest one delivery (a local file or folder, or a URL) through its contract.

    Raises FeedReadError (and logs the failed batch) when the delivery cannot be read at all.
    """
    started = datetime.now(UTC)
    batch_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    uri = source_uri_of(source)
    is_local = "://" not in uri
    owned = SILVER[contract.table] if contract.prune_missing else None  # incremental feeds share rows across polls
    sha = ""
    commits = BatchCommits()
    try:
        if is_local:
            require_utf8_name(Path(source).resolve())
            if not Path(uri).exists():
                raise FeedReadError(str(source), "file not found")
            sha = delivery_sha256(Path(uri))
            if already_ingested(contract.feed, sha, uri, owned):
                return IngestResult(contract.feed, uri, "skipped", batch_id, message="already ingested (same sha256)")
        batch = read_delivery(uri, contract)
        if not is_local:
            sha = batch.sha256 or ""
            if sha and already_ingested(contract.feed, sha, uri, owned):
                return IngestResult(contract.feed, uri, "skipped", batch_id, message="unchanged since last ingest")
        source_crs = _source_crs(batch, contract)
        lineage = Lineage(contract.feed, uri, sha, batch_id, started)
        result = _write_batch(batch, contract, source_crs, lineage, commits)
        _log(batch_id, contract, uri, sha, "succeeded", result[3], started, result, commits.versions)
    except Exception as exc:
        error = _failed(exc, commits, batch_id, contract, uri, sha, started)
        if error is exc:
            raise
        raise error from exc
    crash_point(INGEST_LOG.key)
    return IngestResult(contract.feed, uri, "ingested", batch_id, *result)


def _failed(exc: Exception, commits: BatchCommits, batch_id: str, contract: FeedContract, uri: str, sha: str,
            started: datetime) -> Exception:
    """Undo the batch's table commits, log it `failed`, and return the error to raise: one line saying what stayed."""
    kept = commits.undo()
    message = str(exc) if isinstance(exc, OnemapError) else f"{type(exc).__name__}: {exc}"
    if kept:
        message += (f" ({', '.join(kept)} could not be restored and hold part of this batch until the delivery is "
                    f"ingested again)")
    try:
        _log(batch_id, contract, uri, sha, "failed", message, started)
    except delta_io.LakeWriteError as log_error:
        message += f"; the failed batch is not in the ingest log either: {log_error}"
    return exc if message == str(exc) else OnemapError(message)


def _source_crs(batch: RawBatch, contract: FeedContract) -> SourceCrs:
    declared = contract.crs if (contract.crs_override or not batch.crs) else batch.crs
    try:
        return resolve_crs(declared)
    except OnemapError as exc:
        raise FeedReadError(str(batch.source), str(exc)) from exc


def _write_batch(batch: RawBatch, contract: FeedContract, crs: SourceCrs, lineage: Lineage,
                 commits: BatchCommits) -> tuple[int, int, int, str]:
    spec = SILVER[contract.table]
    delivered = delivered_rows(batch, lineage, crs.label)
    silver, verdicts = build_silver_rows(batch, contract, crs, delivered)
    passed = verdicts.passed
    quarantine = delivered.filter(pa.array(~passed)).append_column(
        "rule_id", pa.array(verdicts.rule_id[~passed].tolist(), pa.string())).append_column(
        "reason", pa.array(verdicts.reason[~passed].tolist(), pa.string()))
    good = silver.filter(pa.array(passed))
    repaired_rows = pc.filter(good.column("_row_number"), good.column("_repaired")).to_pylist()
    _replace_source_rows(commits, QUARANTINE[spec.name], quarantine, lineage.source_uri)
    _write_silver(commits, spec, good, lineage.source_uri, contract.prune_missing)
    _write_children(batch, spec, passed, lineage, contract.prune_missing, commits)
    _replace_source_rows(commits, BRONZE[spec.name], delivered, lineage.source_uri)
    note = f"repaired {len(repaired_rows)} invalid geometries (rows {_row_list(repaired_rows)})" if repaired_rows else ""
    return batch.num_rows, good.num_rows, quarantine.num_rows, note


def _holds_rows_of(spec: TableSpec, source_uri: str) -> bool:
    table = delta_io.open_table(spec)
    return table is not None and delta_io.read_snapshot(table, ["_source_uri"],
                                                        pc.field("_source_uri") == source_uri).num_rows > 0


def _replace_source_rows(commits: BatchCommits, spec: TableSpec, rows: pa.Table, source_uri: str) -> None:
    """Replace this source's rows of a bronze or quarantine table; no rows to write and none to remove is no
    commit at all (an empty replace would add a version that changes nothing)."""
    if rows.num_rows or _holds_rows_of(spec, source_uri):
        commits.write(spec, lambda: delta_io.replace_where(spec, rows, "_source_uri", source_uri))


def _write_silver(commits: BatchCommits, spec: TableSpec, rows: pa.Table, source_uri: str, prune: bool) -> None:
    """Merge by key (dropping this source's rows it no longer delivers), or upsert changed rows (incremental feeds)."""
    if not prune:
        commits.write(spec, lambda: delta_io.upsert_changed(spec, rows))
    elif rows.num_rows or _holds_rows_of(spec, source_uri):
        commits.write(spec, lambda: delta_io.merge_by_key(spec, rows, source_uri))


def _write_children(batch: RawBatch, spec: TableSpec, passed: np.ndarray, lineage: Lineage, prune: bool,
                    commits: BatchCommits) -> None:
    """Rows of child tables (e.g. an item's assets) follow their parent: only children of rows that passed."""
    for name, rows in batch.children.items():
        child = SILVER[name]
        parent_rows = rows.column("_parent_row").to_numpy()
        keep = passed[parent_rows - 1]
        rows = rows.filter(pa.array(keep))
        rows = rows.append_column("_row_number", rows.column("_parent_row").cast(pa.int64())).drop_columns(
            ["_parent_row"])
        for column, values in lineage.columns(np.zeros(rows.num_rows, dtype=np.int64)).items():
            if column != "_row_number" and column not in rows.column_names:  # e.g. the reader's _row_hash
                rows = rows.append_column(column, values)
        _write_silver(commits, child, rows, lineage.source_uri, prune)


def _row_list(rows: list[int], most: int = 20) -> str:
    shown = ", ".join(map(str, rows[:most]))
    return shown + (f" and {len(rows) - most} more" if len(rows) > most else "")


def build_silver_rows(batch: RawBatch, contract: FeedContract, crs: SourceCrs,
                      delivered: pa.Table) -> tuple[pa.Table, Verdicts]:
    """Canonical, validated rows (all of them, with the verdict per row) in CGCS2000 with area and bbox."""
    spec = SILVER[contract.table]
    canonical = canonicalize(batch, contract, spec)
    verdicts = new_verdicts(batch.num_rows)
    _fail_reader_problems(verdicts, batch.row_problems)
    verdicts.fail(np.not_equal(canonical.problems, None), "FIELD_CAST", canonical.problems)
    source_geoms = shapely.from_wkb(batch.geometry, on_invalid="ignore")
    repaired = check_geometry(verdicts, source_geoms, spec.geometry_types, contract.repair_invalid)
    silver = to_silver_geometry(batch.geometry, source_geoms, verdicts.passed, repaired, crs)
    del source_geoms  # bronze keeps the delivered WKB; free the GEOS copies early (memory at 1M parcels)
    check_region(verdicts, silver.bounds, contract.region_check or spec.region_rule)
    _fill_spatial(canonical, silver)
    if "source_crs" in canonical.columns and "source_crs" not in contract.fields:
        canonical.columns["source_crs"] = pa.array([crs.label] * batch.num_rows, pa.string())
    check_lengths(verdicts, canonical.columns, spec.text_limits(),
                  {name: rule.field for name, rule in contract.fields.items() if rule.field is not None})
    check_required(verdicts, canonical.columns, spec.required)
    check_dictionary(verdicts, canonical.columns)
    check_unique_key(verdicts, canonical.columns, spec.primary_key)
    _derive(spec, canonical.columns, silver.area_m2)
    lineage_columns = {f.name: delivered.column(f.name) for f in delivered.schema if f.name.startswith("_")}
    if batch.row_hashes is not None:
        lineage_columns["_row_hash"] = pa.array(batch.row_hashes, pa.string())
    table = pa.table({
        **canonical.columns,
        "geometry": silver.wkb,
        **{name: silver.bounds[:, i] for i, name in enumerate(BBOX_COLUMNS)},
        **lineage_columns,
    })
    return table.append_column("_repaired", pa.array(repaired)), verdicts


def _fail_reader_problems(verdicts: Verdicts, problems: np.ndarray | None) -> None:
    """Rows the reader already judged (RawBatch.row_problems), each under the rule the reader names."""
    if problems is None:
        return
    for rule in {p[0] for p in problems if p is not None}:
        mask = np.array([p is not None and p[0] == rule for p in problems], dtype=bool)
        verdicts.fail(mask, rule, np.array([p[1] if p is not None else None for p in problems], dtype=object))


def _fill_spatial(canonical: Canonical, silver: SilverGeometry) -> None:
    """Columns the contract fills by location (`spatial: districts`): the district containing the row."""
    geoms = silver.shapely() if canonical.spatial_rules else None
    for name in canonical.spatial_rules:
        districts = delta_io.read_table(DISTRICTS, columns=["district_code", "geometry"])
        if districts.num_rows == 0:
            raise OnemapError(f"{name} is assigned by location but silver.districts is empty; ingest districts first")
        tree = shapely.STRtree(shapely.from_wkb(districts.column("geometry").to_numpy(zero_copy_only=False)))
        present = ~shapely.is_missing(geoms)
        points = np.full(len(geoms), None, dtype=object)
        points[present] = shapely.point_on_surface(geoms[present])
        row, hit = tree.query(points, predicate="intersects")
        codes = np.full(len(geoms), None, dtype=object)
        codes[row] = districts.column("district_code").to_numpy(zero_copy_only=False)[hit]
        canonical.columns[name] = pa.array(codes.tolist(), pa.string())


def _derive(spec: TableSpec, columns: dict[str, pa.Array], area_m2: np.ndarray) -> None:
    """Computed columns: ellipsoidal area, net parcel area, class names from the dictionary."""
    if "area_m2" in columns:
        columns["area_m2"] = pa.array(area_m2, pa.float64(), from_pandas=True)
    if "net_area_m2" in columns:
        factor = pc.coalesce(columns["deduction_factor"],
                             pc.divide(columns["deduction_area_m2"], columns["reported_area_m2"]), 0.0)
        columns["net_area_m2"] = pc.multiply(columns["area_m2"], pc.subtract(1.0, factor))
    if "land_class_name" in columns:
        names = pa.array([c.name_zh for c in domain.land_classes().values()])
        codes = pa.array(list(domain.land_classes()))
        from_dictionary = pc.take(names, pc.index_in(columns["land_class_code"], codes))
        columns["land_class_name"] = pc.coalesce(columns["land_class_name"], from_dictionary)


def _log(batch_id: str, contract: FeedContract, source: str, sha: str, status: str, message: str,
         started: datetime, counts: tuple[int, int, int, str] = (0, 0, 0, ""),
         versions: dict[str, int] | None = None) -> None:
    """Append the batch's ingest-log row; a `succeeded` row is the batch's commit point and records `versions`."""
    metadata = {BATCH_METADATA: batch_id, VERSIONS_METADATA: json.dumps(versions or {})}
    delta_io.append(INGEST_LOG, pa.table({
        "batch_id": [batch_id], "feed": [contract.feed], "table_name": [contract.table], "source_uri": [source],
        "source_sha256": [sha], "status": [status], "message": [message[:2000]],
        "rows_read": [counts[0]], "rows_silver": [counts[1]], "rows_quarantined": [counts[2]],
        "started_at": pa.array([started], pa.timestamp("us", tz="UTC")),
        "finished_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
    }), commit_metadata=metadata)
