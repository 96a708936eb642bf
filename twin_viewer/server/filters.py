"""SQL WHERE clauses (with bound parameters) for bbox and datetime, shared by OGC API – Features and STAC.

The bbox test first compares the float bbox_* columns (Delta/Parquet statistics skip files and row groups on
them), then checks the exact geometry with ST_Intersects.
"""

from __future__ import annotations

from typing import Any

from twin_viewer.server.params import Interval


def bbox_clause(bbox: tuple[float, float, float, float] | None) -> tuple[list[str], list[Any]]:
    if bbox is None:
        return [], []
    minx, miny, maxx, maxy = bbox
    return ([
        "bbox_xmax >= ? AND bbox_xmin <= ? AND bbox_ymax >= ? AND bbox_ymin <= ?",
        "ST_Intersects(ST_GeomFromWKB(geometry), ST_MakeEnvelope(?, ?, ?, ?))",
    ], [minx, maxx, miny, maxy, minx, miny, maxx, maxy])


def time_clause(interval: Interval | None, starts: str, ends: str) -> tuple[list[str], list[Any]]:
    """Rows whose time span [starts, ends] (SQL expressions of ours, equal for an instant) overlaps the interval."""
    if interval is None:
        return [], []
    clauses, params = [], []
    if interval.start is not None:
        clauses.append(f"{ends} >= ?")
        params.append(interval.start)
    if interval.end is not None:
        clauses.append(f"{starts} <= ?")
        params.append(interval.end)
    return clauses, params


def where(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""
