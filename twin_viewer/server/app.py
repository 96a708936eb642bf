"""The ASGI app factory: department query API (OGC API – Features at /, STAC API at /stac, SQL at /sql).

Every request passes two gates before any handler: a path guard (no '..', encoded slashes, backslashes or NULs in
the raw URL) and the audit middleware, which records the request — refused ones included — once it is answered.
The viewer (issue 5) mounts its pages and tiles on the same app.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from lake.access.audit import MAX_PARAMETERS, AuditLog, AuditRecord
from lake.access.catalog import Catalogs
from lake.access.grants import TokenStore
from lake.access.sandbox import QueryRefused, SandboxLimits
from twin_viewer.server import viewer
from twin_viewer.server.deps import identify
from twin_viewer.server.errors import error_response, outcome_for
from twin_viewer.server.responses import install_host_guard

MAX_BODY_BYTES = 2 * 1024 ** 2
SECRET_BODIES = frozenset({"/viewer/signin"})  # their body is a token: never written to the audit
FORBIDDEN_IN_PATH = (b"..", b"%2e%2e", b"%2e.", b".%2e", b"%2f", b"%5c", b"\\", b"%00", b"\x00")


@dataclass(frozen=True)
class ApiConfig:
    """Limits of the query API; `from_env` reads ONEMAP_SQL_TIMEOUT_S, ONEMAP_SQL_MAX_ROWS, ONEMAP_SQL_MEMORY_MB,
    ONEMAP_SQL_WORKERS and ONEMAP_AUDIT_INTERVAL_S. Time and memory hold for every department query (SQL, OGC,
    STAC): each runs in a sandbox worker process that is killed at the time limit and whose address space is capped
    at the memory limit. Parallelism comes from the workers: one DuckDB thread each served 8 clients with a lower
    p95 than two (benchmarks.access_load_bench: OGC 113-123 ms against 140-158 ms)."""

    sql_timeout_s: float = 30.0
    sql_max_rows: int = 100_000
    memory_mb: int = 2048
    workers: int = 2
    threads: int = 1
    items_default_limit: int = 10
    items_max_limit: int = 10_000
    audit_interval_s: float = 2.0

    @classmethod
    def from_env(cls) -> ApiConfig:
        env = os.environ
        return cls(sql_timeout_s=float(env.get("ONEMAP_SQL_TIMEOUT_S", cls.sql_timeout_s)),
                   sql_max_rows=int(env.get("ONEMAP_SQL_MAX_ROWS", cls.sql_max_rows)),
                   memory_mb=int(env.get("ONEMAP_SQL_MEMORY_MB", cls.memory_mb)),
                   workers=int(env.get("ONEMAP_SQL_WORKERS", cls.workers)),
                   audit_interval_s=float(env.get("ONEMAP_AUDIT_INTERVAL_S", cls.audit_interval_s)))

    @property
    def sandbox_limits(self) -> SandboxLimits:
        return SandboxLimits(timeout_s=self.sql_timeout_s, memory_bytes=self.memory_mb * 1024 ** 2,
                             workers=self.workers, threads=self.threads)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        request.state.audit.update(message=str(exc.detail), outcome=getattr(exc, "outcome", None))
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(QueryRefused)
    async def query_refused(request: Request, exc: QueryRefused) -> JSONResponse:
        request.state.audit.update(message=str(exc), outcome=exc.outcome)
        return error_response(503 if exc.outcome == "busy" else 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        request.state.audit.update(message=reason)
        return error_response(400, reason)


def _install_gates(app: FastAPI) -> None:
    @app.middleware("http")
    async def audit_and_guard(request: Request, call_next: Any) -> Any:
        started, request_id = time.perf_counter(), uuid.uuid4().hex
        request.state.audit = {"parameters": request.url.query or None}
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return error_response(413, f"request bodies are limited to {MAX_BODY_BYTES // 1024 ** 2} MiB")
        if request.method == "POST" and request.url.path not in SECRET_BODIES:  # kept even when refused
            body = (await request.body())[:MAX_PARAMETERS].decode("utf-8", "replace")
            request.state.audit["parameters"] = "\n".join(filter(None, [request.url.query, body])) or None
        raw = request.scope.get("raw_path") or request.url.path.encode()
        if any(bad in raw.lower() for bad in FORBIDDEN_IN_PATH):
            request.state.audit["message"] = "path traversal refused"
            identify(request)
            status = 404 if raw.startswith((b"/twin/", b"/viewer/")) else 400  # no file outside the folders exists
            response = error_response(status, "the URL path may not contain '..', encoded slashes, backslashes or "
                                              "NUL bytes")
        else:
            try:
                response = await call_next(request)
            except Exception as exc:  # noqa: BLE001 - recorded, then answered as a 500
                request.state.audit["message"] = f"{type(exc).__name__}: {exc}"
                response = error_response(500, f"internal error; quote request id {request_id} to the platform team")
        audit = request.state.audit
        if not viewer.unaudited(request.url.path, response.status_code):
            await run_in_threadpool(app.state.audit.record, AuditRecord(
                request_id=request_id, method=request.method, endpoint=raw.decode("latin-1")[:2000],
                parameters=audit.get("parameters"), status=response.status_code,
                outcome=audit.get("outcome") or outcome_for(response.status_code),
                duration_ms=(time.perf_counter() - started) * 1000, department=audit.get("department"),
                token_id=audit.get("token_id"), message=audit.get("message"), rows=audit.get("rows"),
                client=request.client.host if request.client else None))  # durable before the answer leaves
        response.headers["X-Request-Id"] = request_id
        return response


def create_app(config: ApiConfig | None = None) -> FastAPI:
    from twin_viewer.server import ogc_features, sql_api, stac_api, twin_api

    config = config or ApiConfig.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.audit = AuditLog(config.audit_interval_s)
        await run_in_threadpool(app.state.catalogs.pool.wait_ready)
        threading.Thread(target=app.state.catalogs.warm, name="catalog-warm-up", daemon=True).start()
        threading.Thread(target=viewer.warm_up, name="twin-warm-up", daemon=True).start()
        try:
            yield
        finally:
            app.state.catalogs.close()
            app.state.audit.close()

    app = FastAPI(title="OneMap Twin query API", lifespan=lifespan, docs_url="/api.html", openapi_url="/api")
    app.state.config = config
    app.state.tokens = TokenStore()
    app.state.catalogs = Catalogs(config.sandbox_limits)
    _install_error_handlers(app)
    viewer.install(app)
    install_host_guard(app)  # inside the audit gate: refused Hosts are recorded
    _install_gates(app)
    app.include_router(ogc_features.router)
    app.include_router(stac_api.router, prefix="/stac")
    app.include_router(sql_api.router)
    app.include_router(viewer.router)
    app.include_router(twin_api.router, prefix="/twin/api")
    return app
