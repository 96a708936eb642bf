"""dbt-duckdb plugin: LOAD spatial and delta from their PyPI wheels on every dbt connection (nothing downloaded)."""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from lake.duckdb_engine import load_extensions


class Plugin(BasePlugin):
    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        load_extensions(conn)
