"""`POST /sql`: one checked SELECT over the department's granted relations, bounded in time, rows and memory.

The statement is checked by lake.access.sql_guard (403 outside the grant, 400 for anything but a read), then runs in
a sandbox worker holding nothing but the department's grant (lake.access.sandbox): past the time or memory limit
the worker is killed and replaced, and the request ends with a 400 naming the limit.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from lake.access.catalog import Catalog
from lake.access.sql_guard import SqlRefused, check_sql
from lake.query import render
from twin_viewer.server.deps import current_catalog
from twin_viewer.server.errors import ApiError

router = APIRouter()

MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "geojson": "application/geo+json",
               "parquet": "application/vnd.apache.parquet"}


class SqlRequest(BaseModel):
    sql: str = Field(max_length=100_000, description="One SELECT over your granted tables (DuckDB dialect).")
    format: Literal["json", "csv", "geojson", "parquet"] = "json"


@router.post("/sql")
def sql(body: SqlRequest, request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    request.state.audit["parameters"] = f"format={body.format}\n{body.sql}"
    config = request.app.state.config
    views = {view: grant.columns for view, grant in catalog.views.items()}
    try:
        statement = check_sql(body.sql, views, config.sql_max_rows)
    except SqlRefused as exc:
        raise ApiError(exc.status, str(exc)) from None
    table = catalog.cursor().execute(statement).to_arrow_table(max_rows=config.sql_max_rows + 1)
    truncated = table.num_rows > config.sql_max_rows
    table = table.slice(0, config.sql_max_rows)
    request.state.audit["rows"] = table.num_rows
    if truncated:
        request.state.audit["message"] = f"capped at {config.sql_max_rows} rows"
    headers = {"X-Onemap-Rows": str(table.num_rows), "X-Onemap-Truncated": "true" if truncated else "false"}
    return Response(render(table, body.format), media_type=MEDIA_TYPES[body.format], headers=headers)
