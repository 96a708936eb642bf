"""Department queries run in worker processes whose memory and time the operating system bounds.

The server never runs a department's statement itself. It hands it to a sandbox worker (lake.access.sandbox_worker):
a separate process holding only that department's relations, with its address space capped by RLIMIT_AS. The
server waits at most the time limit and then kills the worker with SIGKILL; a worker that dies (its memory cap) or
is killed is replaced in the background, and other clients keep being served by the other workers. So a runaway
query costs one worker, never the server's memory or its other requests.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from lake.access.sandbox_plan import QueryRequest
from lake.errors import OnemapError
from lake.settings import REPO_ROOT


class QueryRefused(OnemapError):
    """The statement stopped at a limit or failed; the message says which and what to do."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 30.0
    memory_bytes: int = 2 * 1024 ** 3  # address space each worker may add to what it maps at start
    max_result_bytes: int = 256 * 1024 ** 2
    workers: int = 2
    threads: int = 2

    @property
    def duckdb_memory(self) -> str:
        """DuckDB's buffer limit at half the cap, so most big queries fail inside DuckDB with a clean error."""
        return f"{max(self.memory_bytes // 2 // 1024 ** 2, 64)}MB"


class Worker:
    """One worker process and its two pipes."""

    def __init__(self, memory_bytes: int) -> None:
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lake.access.sandbox_worker", str(to_worker_r), str(from_worker_w),
             str(memory_bytes)],
            pass_fds=(to_worker_r, from_worker_w), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                           os.environ.get("PYTHONPATH")]))})
        os.close(to_worker_r)
        os.close(from_worker_w)
        self.requests = Connection(to_worker_w, readable=False)
        self.answers = Connection(from_worker_r, writable=False)

    def wait_ready(self, timeout_s: float) -> None:
        if not self.answers.poll(timeout_s):
            self.kill()
            raise OnemapError(f"a query worker did not start within {timeout_s:g} s")
        self.answers.recv()

    def kill(self) -> None:
        try:
            self.process.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.requests.close()
        self.answers.close()

    @property
    def pid(self) -> int:
        return self.process.pid


class SandboxPool:
    """A fixed number of workers; a request borrows one, and a worker past a limit is killed and replaced."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._all: set[Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(limits.workers):
            self._start_in_background()

    def _start(self) -> None:
        worker = Worker(self.limits.memory_bytes)
        try:
            worker.wait_ready(60)
        except OnemapError:
            return
        with self._lock:
            if self._closed:
                worker.kill()
                return
            self._all.add(worker)
        self._idle.put(worker)

    def _start_in_background(self) -> None:
        threading.Thread(target=self._start, name="sandbox-worker-start", daemon=True).start()

    def _retire(self, worker: Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            closed = self._closed
        if not closed:
            self._start_in_background()

    def wait_ready(self, timeout_s: float = 120) -> None:
        """Block until every worker has started (server start-up: the first queries then find them ready)."""
        deadline = time.monotonic() + timeout_s
        while len(self.worker_pids()) < self.limits.workers and time.monotonic() < deadline:
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._all]

    def run(self, request: QueryRequest) -> Any:
        """The answer (rows or Arrow IPC bytes), or QueryRefused naming the limit or the error."""
        limits, started = self.limits, time.monotonic()
        try:
            worker = self._idle.get(timeout=limits.timeout_s)
        except queue.Empty:
            raise QueryRefused(f"every query worker stayed busy for {limits.timeout_s:g} s; try again shortly",
                               "busy") from None
        remaining = max(limits.timeout_s - (time.monotonic() - started), 0.1)
        try:
            worker.requests.send(request)
            if not worker.answers.poll(remaining):
                self._retire(worker)
                raise QueryRefused(f"query stopped at the {limits.timeout_s:g} s time limit; narrow it (WHERE, bbox "
                                   "columns, LIMIT) or aggregate, or run big jobs with Spark", "timeout")
            status, body = worker.answers.recv()
        except (EOFError, OSError, BrokenPipeError):  # the worker died: its address-space cap
            self._retire(worker)
            raise QueryRefused(self._memory_message(), "memory") from None
        if status == "memory":
            self._retire(worker)  # an allocation failed inside it: start clean
            raise QueryRefused(self._memory_message(), "memory")
        self._idle.put(worker)
        if status == "too_large":
            raise QueryRefused(f"the answer is {int(body) // 1024 ** 2} MB, over the "
                               f"{limits.max_result_bytes // 1024 ** 2} MB limit; select fewer columns or rows",
                               "error")
        if status == "error":
            raise QueryRefused(f"query failed: {body}", "error")
        return pickle.loads(body)

    def _memory_message(self) -> str:
        return (f"query stopped at the {self.limits.memory_bytes // 1024 ** 2} MB memory limit; aggregate or "
                "narrow it")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()
