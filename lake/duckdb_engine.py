"""DuckDB connections with the spatial and delta extensions loaded offline from their PyPI wheels.

No extension is ever downloaded: autoinstall/autoload are switched off and the pinned wheels'
`extensions/v<version>/<name>.duckdb_extension` files are LOADed by path. Lake tables appear as views, gold at
the current release's versions.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

import duckdb

from lake.delta_io import open_table
from lake.errors import OnemapError
from lake.registry import ALL_TABLES, TableSpec
from lake.releases import NotReleased, current_release, version_in

EXTENSIONS = ("spatial", "delta")


@cache
def extension_path(name: str) -> Path:
    """Path of the extension binary shipped in the `duckdb-extension-<name>` wheel for this DuckDB version."""
    package = importlib.import_module(f"duckdb_extension_{name}")
    candidate = Path(package.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not candidate.exists():
        raise OnemapError(f"DuckDB extension {name!r} for DuckDB {duckdb.__version__} not found at {candidate}; "
                          "run `make setup` (the duckdb-extension-* pins must match the duckdb pin)")
    return candidate


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    for name in EXTENSIONS:
        con.execute(f"LOAD '{extension_path(name)}'")


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with spatial and delta loaded (offline)."""
    con = duckdb.connect(database)
    load_extensions(con)
    return con


def view_names(spec: TableSpec) -> list[str]:
    """Silver tables are queryable by their bare name; every table also as `<layer>_<name>`."""
    names = [f"{spec.layer}_{spec.name}"]
    if spec.layer in ("silver", "gold"):
        names.insert(0, spec.name)
    return names


def delta_scan_sql(spec: TableSpec, version: int | None = None) -> str:
    """`delta_scan` of a table at `version` (the delta extension's time travel), or at its latest when None."""
    at = f", version => {int(version)}" if version is not None else ""
    return f"delta_scan('{spec.uri}'{at})"


def lake_views(con: duckdb.DuckDBPyConnection, tables: tuple[TableSpec, ...] = ALL_TABLES) -> list[str]:
    """Create a view per readable lake table; return the view names created.

    Gold is read at the current release's versions (looked up once, so every gold view comes from one release) and
    is absent before its first release; the other layers are read at their latest version.
    """
    release = current_release()
    created: list[str] = []
    for spec in tables:
        try:
            version = version_in(release, spec)
        except NotReleased:
            continue
        if version is None and open_table(spec) is None:
            continue
        for view in view_names(spec):
            con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {delta_scan_sql(spec, version)}")
            created.append(view)
    return created
