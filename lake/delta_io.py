"""Delta Lake reads and writes through delta-rs, every write one commit against a registered table.

Tables are created on first write with the registry's schema, partitioning and properties, and kept at the
plain reader/writer protocol (1, 2) that DuckDB's delta extension, delta-rs and Spark all read.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pa_ds
import pyarrow.fs as pa_fs
from deltalake import ColumnProperties, CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from lake.errors import OnemapError
from lake.registry import TableSpec


class LakeWriteError(OnemapError):
    """A write the lake refused (disk full, read-only, no permission, a concurrent commit); nothing was committed."""


class ConcurrentWriteError(LakeWriteError):
    """Another writer committed first and delta-rs cannot tell the two apart; the same write may simply be retried."""


_OS_REFUSALS = {
    errno.ENOSPC: ("the disk holding it is full", "free space on it (or move ONEMAP_LAKE) and run the command again"),
    errno.EROFS: ("its file system is read-only", "remount it read-write (or point ONEMAP_LAKE to a writable lake) "
                                                  "and run the command again"),
    errno.EACCES: ("this user may not write there", "grant write access to the lake directory (or run as its owner) "
                                                    "and run the command again"),
    errno.EPERM: ("this user may not write there", "grant write access to the lake directory (or run as its owner) "
                                                   "and run the command again"),
}


def lake_error(spec: TableSpec, exc: BaseException) -> LakeWriteError | None:
    """The one-line error for a delta-rs/OS failure to write `spec`, or None for failures that are not the lake's.

    delta-rs reports OS errors as text (`… (os error 28)`), Python as OSError; both map to the same line.
    """
    text = str(exc)
    if isinstance(exc, CommitFailedError) or "concurrent" in text.lower():
        detail = " ".join(text.split())[:200]
        return ConcurrentWriteError(f"{spec.key}: another writer committed to it at the same time ({detail}); "
                                    f"run the command again")
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None and (match := re.search(r"os error (\d+)", text)):
        code = int(match.group(1))
    if code not in _OS_REFUSALS:
        return None
    reason, fix = _OS_REFUSALS[code]
    return LakeWriteError(f"{spec.key}: cannot write to {spec.uri}: {reason} ({os.strerror(code)}); {fix}")


_stderr_held = threading.RLock()  # one write at a time holds descriptor 2 (it is the process's, not the thread's)
_depth = threading.local()


@contextmanager
def _lake_errors(spec: TableSpec) -> Iterator[None]:
    """Turn a refused write into its one line (lake_error) and keep the Rust panic text that comes with it off stderr.

    On a full disk delta-rs's object store panics in a worker thread ("Already shut down") and Rust prints that panic
    (a backtrace under RUST_BACKTRACE) straight to file descriptor 2 before the Python error arrives. Descriptor 2
    is held in a temporary file during the write and replayed unless the failure became a LakeWriteError. Writes of
    one process hold it one at a time (other threads' stderr lines in that window are replayed with it).
    """
    with _stderr_held:
        if getattr(_depth, "n", 0):  # nested (ensure_table inside a write): the outer call holds and translates
            yield
            return
        sys.stderr.flush()
        saved = os.dup(2)
        refused = False
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            _depth.n = 1
            try:
                yield
            except LakeWriteError:
                refused = True
                raise
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - delta-rs panics are BaseException (pyo3 PanicException)
                error = lake_error(spec, exc)
                if error is None:
                    raise
                refused = True
                raise error from exc
            finally:
                _depth.n = 0
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                if not refused:
                    held.seek(0)
                    os.write(2, held.read())


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def open_table(spec: TableSpec, version: int | None = None) -> DeltaTable | None:
    """The Delta table, or None when nothing was ever written to it."""
    try:
        return DeltaTable(spec.uri, version=version)
    except TableNotFoundError:
        return None


def ensure_table(spec: TableSpec) -> DeltaTable:
    """Create the table (empty, with its properties) if it does not exist yet."""
    with _lake_errors(spec):
        table = open_table(spec)
        if table is not None:
            return table
        DeltaTable.create(spec.uri, schema=spec.schema, partition_by=list(spec.partition_by) or None,
                          name=spec.name, description=spec.description)
        table = DeltaTable(spec.uri)
        # delta-rs refuses custom keys at create time but accepts them through ALTER.
        table.alter.set_table_properties(spec.table_properties(), raise_if_not_exists=False)
        return DeltaTable(spec.uri)


def writer_properties(spec: TableSpec) -> WriterProperties:
    """No Parquet min/max statistics on WKB, attribute maps and other blobs: useless for skipping, costly to write.

    Geometry skipping goes through the bbox_* columns, whose statistics stay on.
    """
    blobs = {f.name: ColumnProperties(statistics_enabled="NONE") for f in spec.schema
             if pa.types.is_binary(f.type) or pa.types.is_map(f.type)}
    return WriterProperties(column_properties=blobs)


def conform(spec: TableSpec, data: pa.Table) -> pa.Table:
    """Select and cast the registry's columns in order; a missing column is an error in our code, not the feed's."""
    return pa.Table.from_arrays([data.column(f.name).cast(f.type) for f in spec.schema], schema=spec.schema)


def append(spec: TableSpec, data: pa.Table, commit_metadata: dict[str, str] | None = None) -> None:
    """One append commit; `commit_metadata` lands in the commit's info (`history()`), e.g. to make a retry
    recognise that its commit already happened."""
    with _lake_errors(spec):
        ensure_table(spec)
        properties = CommitProperties(custom_metadata=commit_metadata) if commit_metadata else None
        write_deltalake(spec.uri, conform(spec, data), mode="append", writer_properties=writer_properties(spec),
                        commit_properties=properties)


def replace_where(spec: TableSpec, data: pa.Table, column: str, value: str) -> None:
    """Replace every row whose `column` equals `value` with `data` (all of which carry that value), one commit."""
    with _lake_errors(spec):
        ensure_table(spec)
        write_deltalake(spec.uri, conform(spec, data), mode="overwrite",
                        predicate=f"{column} = {_sql_literal(value)}", writer_properties=writer_properties(spec))


def merge_by_key(spec: TableSpec, data: pa.Table, source_uri: str) -> dict[str, Any]:
    """Upsert rows by primary key and drop the rows this source delivered before but no longer does; one commit.

    Into an empty table this is a plain append (same result, without the merge's join).
    """
    with _lake_errors(spec):
        table = ensure_table(spec)
        if row_count(table) == 0:
            write_deltalake(spec.uri, conform(spec, data), mode="append", writer_properties=writer_properties(spec))
            return {"num_target_rows_inserted": data.num_rows}
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in spec.primary_key)
        return (
            table.merge(conform(spec, data), predicate=predicate, source_alias="s", target_alias="t",
                        writer_properties=writer_properties(spec))
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(predicate=f"t._source_uri = {_sql_literal(source_uri)}")
            .execute()
        )


def upsert_changed(spec: TableSpec, data: pa.Table) -> int:
    """Incremental sources: insert new keys, replace rows whose `_row_hash` changed, leave the rest untouched.

    Unchanged rows are dropped before the merge, so an unchanged poll writes no new version at all.
    Returns the number of rows written.
    """
    with _lake_errors(spec):
        table = ensure_table(spec)
        key = list(spec.primary_key)
        existing = read_snapshot(table, [*key, "_row_hash"])
        if existing.num_rows:
            same = data.select([*key, "_row_hash"]).join(existing, keys=[*key, "_row_hash"], join_type="left semi")
            data = data.join(same.select(key), keys=key, join_type="left anti") if same.num_rows else data
        if data.num_rows == 0:
            return 0
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in key)
        (table.merge(conform(spec, data), predicate=predicate, source_alias="s", target_alias="t",
                     writer_properties=writer_properties(spec))
         .when_matched_update_all().when_not_matched_insert_all().execute())
        return data.num_rows


def native_filesystem(table_uri: str) -> pa_fs.FileSystem | None:
    """Arrow's own filesystem rooted at the table, or None for a scheme Arrow does not know.

    delta-rs's default for `to_pyarrow_dataset` is a Python filesystem (`PyFileSystem(DeltaStorageHandler)`):
    Arrow's read-ahead threads then hold Python-owned buffers, and one released while the interpreter finalizes
    calls `PyGILState_Ensure`, which ends that C++ thread inside a noexcept destructor: `terminate called without
    an active exception`, exit -6, in about half of all processes that read a table and exit. With Arrow's native
    filesystem no Python object is touched off the main thread.
    """
    uri = table_uri.removeprefix("file://") if table_uri.startswith("file://") else table_uri
    if "://" not in uri:
        return pa_fs.SubTreeFileSystem(uri, pa_fs.LocalFileSystem())
    try:
        filesystem, path = pa_fs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None
    return pa_fs.SubTreeFileSystem(path, filesystem)


def dataset(table: DeltaTable) -> pa_ds.Dataset:
    """The snapshot as an Arrow dataset read through Arrow's native filesystem (see native_filesystem).

    Every Arrow read of a Delta table goes through here."""
    return table.to_pyarrow_dataset(filesystem=native_filesystem(table.table_uri))


def read_snapshot(table: DeltaTable, columns: list[str] | None = None,
                  filter: pa_ds.Expression | None = None) -> pa.Table:
    return dataset(table).to_table(columns=columns, filter=filter)


def read_table(spec: TableSpec, columns: list[str] | None = None, version: int | None = None) -> pa.Table:
    """All rows (empty table with the registry schema when the table does not exist)."""
    table = open_table(spec, version)
    if table is None:
        return spec.schema.empty_table() if columns is None else spec.schema.empty_table().select(columns)
    return read_snapshot(table, columns)


def row_count(table: DeltaTable) -> int:
    """Rows of the current snapshot from the add actions' statistics (no data read)."""
    actions = pa.table(table.get_add_actions(flatten=True))  # delta-rs returns arro3; read via the C stream
    return int(pc.sum(actions.column("num_records")).as_py() or 0) if actions.num_rows else 0


def overwrite(spec: TableSpec, data: pa.Table, predicate: str | None = None) -> int:
    """Replace the whole table, or the rows matching `predicate`, with `data` in one commit; return the version."""
    with _lake_errors(spec):
        ensure_table(spec)
        write_deltalake(spec.uri, conform(spec, data), mode="overwrite", predicate=predicate,
                        writer_properties=writer_properties(spec))
        return DeltaTable(spec.uri).version()
