"""The audit trail: every API request appended to meta/audit_log.

A Delta commit costs tens of milliseconds, so requests only queue their record; a background thread commits the
queue every few seconds in one append, and `close()` (server shutdown) commits what is left, so nothing recorded
is lost on a normal stop.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from lake import delta_io
from lake.duckdb_engine import connect
from lake.registry import AUDIT_LOG


@dataclass
class AuditRecord:
    method: str
    endpoint: str
    parameters: str | None
    status: int
    outcome: str
    duration_ms: float
    department: str | None = None
    token_id: str | None = None
    message: str | None = None
    rows: int | None = None
    client: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class AuditLog:
    """Queue records; commit them in batches from a background thread and on close."""

    def __init__(self, interval_s: float = 2.0) -> None:
        self._pending: list[AuditRecord] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), name="audit-flush", daemon=True)
        self._thread.start()

    def record(self, entry: AuditRecord) -> None:
        with self._lock:
            self._pending.append(entry)

    def flush(self) -> int:
        """Commit queued records (one Delta append); returns how many. A failed commit keeps them queued."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                delta_io.append(AUDIT_LOG, pa.Table.from_pylist([asdict(r) for r in batch], schema=AUDIT_LOG.schema))
            except Exception:
                with self._lock:
                    self._pending[:0] = batch
                raise
            return len(batch)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - retried at the next tick and at close
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()


def read_audit(limit: int = 50, department: str | None = None) -> pa.Table:
    """The latest audit records, newest first (for `onemap access audit`)."""
    if delta_io.open_table(AUDIT_LOG) is None:
        return AUDIT_LOG.schema.empty_table()
    sql = f"SELECT * FROM delta_scan('{AUDIT_LOG.uri}')"
    params: list = []
    if department is not None:
        sql += " WHERE department = ?"
        params.append(department)
    con = connect()
    try:
        return con.execute(f"{sql} ORDER BY \"at\" DESC LIMIT ?", [*params, limit]).to_arrow_table()
    finally:
        con.close()
