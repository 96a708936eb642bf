"""What the server sends a sandbox worker: the department's relations and one statement (plain, picklable data)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Relation:
    """One granted table as the department sees it: a snapshot, its granted columns and districts."""

    views: tuple[str, ...]  # the names it is queryable under
    uri: str
    version: int | None  # pinned snapshot (gold: the current release); None only for a table read at its head
    columns: tuple[str, ...]
    districts: tuple[str, ...] | None  # None: every district
    district_partitioned: bool  # the table's files are partitioned by district_code (whole files are filtered)


def plan_key(department_id: str, relations: tuple[Relation, ...]) -> str:
    """Identifies one department's database: a worker reuses it while the grant and every snapshot are the same."""
    return hashlib.sha256(repr((department_id, relations)).encode()).hexdigest()


@dataclass(frozen=True)
class QueryRequest:
    plan_key: str
    relations: tuple[Relation, ...]
    sql: str
    params: list[Any]
    arrow: bool  # answer an Arrow IPC stream (True) or a list of row tuples
    max_rows: int
    max_bytes: int
    memory_limit: str  # DuckDB's own buffer limit, below the process's address-space cap
    threads: int
