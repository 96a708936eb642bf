"""The sandbox worker: a process that runs department queries over nothing but their grant.

Started by lake.access.sandbox with two pipe file descriptors. Each request carries the department's relations (a
table snapshot, the granted columns, the granted districts) and one statement. The worker reads the snapshot with
Arrow (the district filter and column projection applied before DuckDB sees a row) and registers it in a DuckDB
database of that department alone, whose file system access, extension loading and configuration are switched
off before the first statement runs: a name that is not a registered relation resolves to nothing, however the
statement is spelled. The process caps its own address space (RLIMIT_AS) so a memory bomb ends this process, not
the server, and the server kills it at the time limit.
"""

from __future__ import annotations

import io
import os
import pickle
import resource
import sys
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pa_ds
from deltalake import DeltaTable

from lake import delta_io
from lake.access.sandbox_plan import QueryRequest, Relation
from lake.duckdb_engine import extension_path

CACHED_DATABASES = 8
IN_MEMORY_FILE_BYTES = 128 * 1024 ** 2  # a granted snapshot whose files are smaller is decoded once and kept
IN_MEMORY_TOTAL_BYTES = 512 * 1024 ** 2  # decoded snapshots kept per worker (least recently used go first)
_decoded: OrderedDict[Relation, pa.Table] = OrderedDict()


def _address_space_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))


def cap_memory(budget_bytes: int) -> None:
    """Cap the address space at what the process maps now plus the budget: allocations beyond fail (DuckDB raises
    an out-of-memory error, or the process dies) and the kernel, not our code, enforces it."""
    limit = _address_space_kb() * 1024 + budget_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def granted_part(relation: Relation) -> pa_ds.Dataset | pa.Table:
    """The granted part of one table snapshot: granted columns only, granted districts only."""
    snapshot = delta_io.dataset(DeltaTable(relation.uri, version=relation.version))
    granted = pa.schema([snapshot.schema.field(c) for c in relation.columns])
    if relation.districts is None:
        return pa_ds.FileSystemDataset(list(snapshot.get_fragments()), granted, snapshot.format, snapshot.filesystem)
    wanted = pc.field("district_code").isin(list(relation.districts))
    if relation.district_partitioned:  # whole files of the granted districts, pruned by their partition values
        fragments = list(snapshot.get_fragments(filter=wanted))
        return pa_ds.FileSystemDataset(fragments, granted, snapshot.format, snapshot.filesystem)
    return snapshot.to_table(columns=list(relation.columns), filter=wanted)  # small attribute tables


def _file_bytes(data: pa_ds.FileSystemDataset) -> int:
    return sum(info.size or 0 for info in data.filesystem.get_file_info(data.files))


def relation_data(relation: Relation) -> pa_ds.Dataset | pa.Table:
    """The granted part, decoded into memory when it is small enough: a snapshot never changes, and a feature page
    or an aggregate then scans Arrow buffers instead of decoding Parquet again (a worker's CPU per OGC bbox page
    was mostly that decoding). Larger snapshots stay datasets, scanned with DuckDB's filters pushed down."""
    if relation in _decoded:
        _decoded.move_to_end(relation)
        return _decoded[relation]
    data = granted_part(relation)
    if isinstance(data, pa_ds.FileSystemDataset):
        if _file_bytes(data) > IN_MEMORY_FILE_BYTES:
            return data
        data = data.to_table()
    _decoded[relation] = data
    while sum(t.nbytes for t in _decoded.values()) > IN_MEMORY_TOTAL_BYTES and len(_decoded) > 1:
        _decoded.popitem(last=False)
    return data


def open_database(relations: tuple[Relation, ...], memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:", config={"threads": threads, "memory_limit": memory_limit})
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"LOAD '{extension_path('spatial')}'")
    for relation in relations:
        data = relation_data(relation)
        for view in relation.views:
            con.register(view, data)
    con.execute("SET python_enable_replacements = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET allow_community_extensions = false")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET lock_configuration = true")
    return con


def _arrow(cursor: duckdb.DuckDBPyConnection, max_rows: int) -> bytes:
    reader = cursor.to_arrow_reader(min(max_rows, 10_000))
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch.slice(0, max_rows - rows))
        rows += batches[-1].num_rows
        if rows >= max_rows:
            break
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, reader.schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue()


def run(request: QueryRequest, databases: OrderedDict[str, duckdb.DuckDBPyConnection]) -> Any:
    con = databases.get(request.plan_key)
    if con is None:
        con = open_database(request.relations, request.memory_limit, request.threads)
        databases[request.plan_key] = con
        while len(databases) > CACHED_DATABASES:
            databases.popitem(last=False)[1].close()
    databases.move_to_end(request.plan_key)
    con.execute(request.sql, request.params)  # on the connection itself: registered relations are its own
    return _arrow(con, request.max_rows) if request.arrow else con.fetchmany(request.max_rows)


def answer(request: QueryRequest, databases: OrderedDict[str, duckdb.DuckDBPyConnection]) -> tuple:
    try:
        payload = run(request, databases)
    except (duckdb.OutOfMemoryException, MemoryError, pa.ArrowMemoryError):
        return ("memory", "")
    except duckdb.Error as exc:
        return ("error", str(exc).splitlines()[0][:500])
    body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    if len(body) > request.max_bytes:
        return ("too_large", str(len(body)))
    return ("ok", body)


def warm_up() -> None:
    """Start what reserves address space once per process (DuckDB's and Arrow's thread pools, their allocators,
    the spatial extension) before the cap is measured, so the budget is left for queries."""
    con = duckdb.connect(":memory:")
    con.execute(f"LOAD '{extension_path('spatial')}'")
    con.register("t", pa_ds.dataset(pa.table({"i": list(range(100_000))})))
    con.execute("select sum(i), st_astext(st_point(1, 2)) from t").fetchall()
    con.close()


def serve(requests: Connection, answers: Connection, budget_bytes: int) -> None:
    warm_up()
    cap_memory(budget_bytes)
    databases: OrderedDict[str, duckdb.DuckDBPyConnection] = OrderedDict()
    answers.send(("ready", os.getpid()))
    while True:
        try:
            request = requests.recv()
        except EOFError:  # the server went away
            return
        answers.send(answer(request, databases))


if __name__ == "__main__":
    try:
        serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False),
              int(sys.argv[3]))
    finally:
        sys.stdout.flush()
        os._exit(0)  # no interpreter teardown: nothing to flush, and no native thread left to race it
