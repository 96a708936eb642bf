"""DuckDB connections with the spatial and delta extensions loaded offline from their PyPI wheels.

No extension is ever downloaded: autoinstall/autoload are switched off and the pinned wheels'
`extensions/v<version>/<name>.duckdb_extension` files are LOADed by path. Lake tables appear as views.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

import duckdb

from lake.delta_io import open_table
from lake.errors import OnemapError
from lake.registry import ALL_TABLES, TableSpec

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


def lake_views(con: duckdb.DuckDBPyConnection, tables: tuple[TableSpec, ...] = ALL_TABLES) -> list[str]:
    """Create a view per existing lake table (over `delta_scan`); return the view names created."""
    created: list[str] = []
    for spec in tables:
        if open_table(spec) is None:
            continue
        for view in view_names(spec):
            con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM delta_scan('{spec.uri}')")
            created.append(view)
    return created
