"""A department's read-only view of the lake: one DuckDB database holding only its granted tables, as views.

Each view selects only the granted columns and, for a district-restricted grant, only the granted districts'
rows, so every path (OGC API, STAC API, SQL) enforces the same grant by construction. After the views are made the
connection is locked down: file access only below the lake root, no extension loading, a memory limit, and
`lock_configuration` so no statement can undo any of it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import duckdb

from lake.access.grants import Department, TableGrant, department, load
from lake.delta_io import open_table
from lake.duckdb_engine import connect, view_names
from lake.settings import current_settings


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Catalog:
    """The department's connection and its views (view name → grant)."""

    con: duckdb.DuckDBPyConnection
    views: dict[str, TableGrant]

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own per request: queries run in parallel and each can be interrupted alone."""
        return self.con.cursor()

    def grant_for(self, view: str) -> TableGrant | None:
        return self.views.get(view)


def _view_sql(grant: TableGrant) -> str:
    columns = ", ".join(quote(c) for c in grant.columns)
    sql = f"SELECT {columns} FROM delta_scan({literal(grant.spec.uri)})"
    if grant.districts is not None:
        sql += f" WHERE district_code IN ({', '.join(literal(d) for d in grant.districts)})"
    return sql


def build_catalog(department: Department, existing: frozenset[str], memory_limit: str, threads: int) -> Catalog:
    con = connect()
    views: dict[str, TableGrant] = {}
    for key, grant in sorted(department.grants.items()):
        if key not in existing:
            continue
        for view in view_names(grant.spec):
            con.execute(f"CREATE VIEW {quote(view)} AS {_view_sql(grant)}")
            views[view] = grant
    settings = current_settings()
    if settings.lake_is_local:
        con.execute(f"SET allowed_directories = [{literal(settings.lake_uri.removeprefix('file://'))}]")
        con.execute("SET enable_external_access = false")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = {literal(memory_limit)}")
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET lock_configuration = true")
    return Catalog(con, views)


class Catalogs:
    """Catalogs cached per department, rebuilt when its grants change or a granted table appears."""

    def __init__(self, memory_limit: str = "2GB", threads: int = 2) -> None:
        self._memory_limit, self._threads = memory_limit, threads
        self._cache: dict[str, tuple[tuple, Catalog]] = {}
        self._lock = threading.Lock()

    def get(self, department: Department) -> Catalog:
        """Tables granted but not yet written are re-checked on each call; existing ones are not re-opened."""
        lake = current_settings().lake_uri
        with self._lock:
            cached = self._cache.get(department.name)
            if cached is not None and cached[0][:2] == (department.fingerprint, lake):
                missing = [g for k, g in department.grants.items() if k not in cached[0][2]]
                if not any(open_table(g.spec) is not None for g in missing):
                    return cached[1]
            existing = frozenset(k for k, g in department.grants.items() if open_table(g.spec) is not None)
            catalog = build_catalog(department, existing, self._memory_limit, self._threads)
            self._cache[department.name] = ((department.fingerprint, lake, existing), catalog)
            return catalog

    def warm(self) -> None:
        """Build every department's catalog now (each loads DuckDB's extensions, about a second) so first
        requests do not wait; run in the background at server start."""
        config = load()
        for name in config["departments"]:
            self.get(department(config, name))
