"""A department's view of the lake: its granted relations, queried only inside a sandbox worker.

The catalog holds no connection. It names the department's relations — each granted table's snapshot (gold at the
current release's version, other layers at the version current when the catalog was resolved), its granted columns
and districts — and sends them with every statement to a worker of the sandbox pool, which builds a database of
that department alone. Every path (OGC API, STAC API, SQL) goes through `cursor()`, so every path gets the same
isolation and the same time and memory limits.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lake.access.grants import Department, TableGrant, department, load
from lake.access.sandbox import SandboxLimits, SandboxPool
from lake.access.sandbox_plan import QueryRequest, Relation, plan_key
from lake.delta_io import open_table
from lake.duckdb_engine import view_names
from lake.releases import NotReleased, current_release, version_in
from lake.settings import current_settings

RESOLVE_EVERY_S = 1.0  # how stale a department's snapshot versions may be (a new ingest shows within this)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class SandboxCursor:
    """The DB-API subset the handlers use (`execute`, `fetchone`, `fetchall`, `to_arrow_table`); the statement runs
    in a worker when its result is fetched."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._sql, self._params = "", []

    def __enter__(self) -> SandboxCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, params: list[Any] | None = None) -> SandboxCursor:
        self._sql, self._params = sql, list(params or [])
        return self

    def fetchall(self, max_rows: int = 1_000_000) -> list[tuple]:
        return self._catalog.run(self._sql, self._params, arrow=False, max_rows=max_rows)

    def fetchone(self) -> tuple | None:
        rows = self.fetchall(max_rows=1)
        return rows[0] if rows else None

    def to_arrow_table(self, max_rows: int = 1_000_000) -> pa.Table:
        body = self._catalog.run(self._sql, self._params, arrow=True, max_rows=max_rows)
        return pa.ipc.open_stream(io.BytesIO(body)).read_all()


@dataclass(frozen=True)
class Catalog:
    """The department's relations (view name → grant) and the pool its statements run in."""

    pool: SandboxPool
    department_id: str
    relations: tuple[Relation, ...]
    views: dict[str, TableGrant]

    def cursor(self) -> SandboxCursor:
        return SandboxCursor(self)

    def grant_for(self, view: str) -> TableGrant | None:
        return self.views.get(view)

    def run(self, sql: str, params: list[Any], *, arrow: bool, max_rows: int) -> Any:
        limits = self.pool.limits
        return self.pool.run(QueryRequest(
            plan_key(self.department_id, self.relations), self.relations, sql, params, arrow, max_rows,
            limits.max_result_bytes, limits.duckdb_memory, limits.threads))


def relations_of(department: Department) -> tuple[tuple[Relation, ...], dict[str, TableGrant]]:
    """The department's granted tables that are readable now, each at a pinned snapshot version."""
    release = current_release()
    relations: list[Relation] = []
    views: dict[str, TableGrant] = {}
    for _, grant in sorted(department.grants.items()):
        spec = grant.spec
        if spec.layer == "meta":  # the logs (audit, ingest, publish) are the platform's own: never a department's
            continue
        try:
            version = version_in(release, spec)
        except NotReleased:
            continue  # gold before its first release: nothing to read yet
        if version is None:
            table = open_table(spec)
            if table is None:
                continue
            version = table.version()
        names = tuple(view_names(spec))
        relations.append(Relation(names, spec.uri, version, grant.columns, grant.districts,
                                  "district_code" in spec.partition_by))
        views.update((name, grant) for name in names)
    return tuple(relations), views


class Catalogs:
    """Catalogs per department, re-resolved at most every RESOLVE_EVERY_S, all sharing one sandbox pool."""

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.pool = SandboxPool(limits or SandboxLimits())
        self._cache: dict[str, tuple[tuple[str, str], float, Catalog]] = {}
        self._lock = threading.Lock()

    def get(self, department: Department) -> Catalog:
        stamp = (department.fingerprint, current_settings().lake_uri)
        with self._lock:
            cached = self._cache.get(department.id)
            if cached is not None and cached[0] == stamp and time.monotonic() - cached[1] < RESOLVE_EVERY_S:
                return cached[2]
        relations, views = relations_of(department)
        catalog = Catalog(self.pool, department.id, relations, views)
        with self._lock:
            self._cache[department.id] = (stamp, time.monotonic(), catalog)
        return catalog

    def warm(self) -> None:
        """Resolve every department's relations now, so first requests do not wait."""
        config = load()
        for name in config["departments"]:
            self.get(department(config, name))

    def close(self) -> None:
        self.pool.close()
