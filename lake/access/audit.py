"""The audit trail: every API request, durable before it is answered, then in meta/audit_log.

A Delta commit costs tens of milliseconds, too much per request, and a queue in memory dies with the process. So a
request's record is appended to the server's own journal ($ONEMAP_HOME/access/audit-journal/current-<id>.jsonl,
held under an exclusive lock while the server lives) and fsynced before the response goes out; writers that arrive
together share one fsync (group commit). A background thread moves the journal to meta/audit_log in batches: it
renames the journal to a segment, appends the segment's records in one Delta commit that names the segment in its
commit metadata, and only then deletes the segment. At start a server claims what dead servers left (journals
nobody holds a lock on, and their segments) and moves it the same way; a segment whose commit already landed (the
crash fell between commit and delete) is recognised by that metadata and only deleted, so no record is lost or
written twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from lake import delta_io
from lake.duckdb_engine import connect
from lake.registry import AUDIT_LOG
from lake.settings import current_settings

SEGMENT_KEY = "onemap.audit_segment"
MAX_PARAMETERS = 4000  # characters of query text or parameters kept per request


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

    def as_json(self) -> str:
        row = asdict(self)
        row["at"] = self.at.isoformat()
        if row["parameters"] is not None:
            row["parameters"] = row["parameters"][:MAX_PARAMETERS]
        return json.dumps(row, ensure_ascii=False)


def journal_dir() -> Path:
    return current_settings().home / "access" / "audit-journal"


def _segment_records(path: Path) -> list[dict]:
    """The segment's complete lines (a line torn by a crash mid-write was never acknowledged: skip it)."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        row["at"] = datetime.fromisoformat(row["at"])
        records.append(row)
    return records


def _committed_segments() -> set[str]:
    table = delta_io.open_table(AUDIT_LOG)
    if table is None:
        return set()
    return {entry[SEGMENT_KEY] for entry in table.history(limit=100) if SEGMENT_KEY in entry}


def _lock_exclusive(fd: int, wait: bool) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


class AuditLog:
    """Durable record per request (journal + fsync), moved to Delta in batches by a background thread."""

    def __init__(self, interval_s: float = 2.0) -> None:
        self._dir = journal_dir()
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._id = uuid.uuid4().hex[:12]
        self._lock = threading.Condition()
        self._pending: list[str] = []
        self._written = self._synced = 0  # sequence numbers of records appended / fsynced
        self._writing = False  # a batch is being written outside the lock
        self._failed = 0  # records up to this sequence number could not be written
        self._journal = self._open_journal()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._claim_orphans()
        self.flush()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), name="audit-flush", daemon=True)
        self._thread.start()

    @property
    def _current(self) -> Path:
        return self._dir / f"current-{self._id}.jsonl"

    def _open_journal(self) -> int:
        fd = os.open(self._current, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _lock_exclusive(fd, wait=True)
        return fd

    def _segment_name(self) -> Path:
        return self._dir / f"segment-{self._id}-{uuid.uuid4().hex}.jsonl"

    def _claim_orphans(self) -> None:
        """Journals no live server holds, and the segments of their owners, become this server's segments."""
        live = {self._id}
        for journal in self._dir.glob("current-*.jsonl"):
            owner = journal.stem.removeprefix("current-")
            if owner == self._id:
                continue
            fd = os.open(journal, os.O_RDONLY)
            try:
                if _lock_exclusive(fd, wait=False):
                    os.replace(journal, self._segment_name())
                else:
                    live.add(owner)
            finally:
                os.close(fd)
        for segment in self._dir.glob("segment-*.jsonl"):
            if segment.name.split("-")[1] not in live:
                os.replace(segment, self._segment_name())

    def record(self, entry: AuditRecord) -> None:
        """Return once the record is on disk (one fsync, shared with concurrent callers); OSError if it could not
        be written (disk full, read-only): the caller must then not answer with data."""
        with self._lock:
            self._pending.append(entry.as_json() + "\n")
            self._written += 1
            mine = self._written
            while self._synced < mine:
                if mine <= self._failed:
                    raise OSError(f"the audit journal in {self._dir} could not be written")
                if self._pending and not self._writing:  # this caller writes everything pending
                    self._write_pending()
                else:
                    self._lock.wait()

    def _write_pending(self) -> None:
        """Called with the lock held; releases it for the write and fsync."""
        batch, self._pending = "".join(self._pending), []
        upto, fd, self._writing = self._written, self._journal, True
        self._lock.release()
        ok = False
        try:
            os.write(fd, batch.encode())
            os.fsync(fd)
            ok = True
        finally:
            self._lock.acquire()
            self._writing = False
            if ok:
                self._synced = max(self._synced, upto)
            else:
                self._failed = max(self._failed, upto)
            self._lock.notify_all()

    def flush(self) -> int:
        """Move the journal and every leftover segment to meta/audit_log; returns the records committed."""
        with self._flush_lock:
            with self._lock:
                while self._pending or self._writing:  # records mid-write land in this journal first
                    self._lock.wait()
                if os.fstat(self._journal).st_size:
                    os.replace(self._current, self._segment_name())
                    os.close(self._journal)
                    self._journal = self._open_journal()
            segments = sorted(self._dir.glob(f"segment-{self._id}-*.jsonl"))
            committed = _committed_segments() if segments else set()  # an idle tick reads no Delta log
            moved = 0
            for segment in segments:
                if segment.name not in committed:
                    records = _segment_records(segment)
                    if records:
                        delta_io.append(AUDIT_LOG, pa.Table.from_pylist(records, schema=AUDIT_LOG.schema),
                                        commit_metadata={SEGMENT_KEY: segment.name})
                        moved += len(records)
                segment.unlink()
            return moved

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the journal keeps the records; retried at the next tick and at close
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()
        os.close(self._journal)


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
