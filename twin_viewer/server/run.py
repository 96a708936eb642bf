"""Run the server for tests and benchmarks: an ASGI app under uvicorn in a background thread (stopping runs its
shutdown), or `onemap serve` as a child process to kill or to measure from outside."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_thread(app: object, timeout_s: float = 30) -> Iterator[str]:
    """Yield the base URL while the app serves on a free 127.0.0.1 port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start (see the uvicorn log above)")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen

    def rss_mb(self) -> float:
        """Resident memory of the server process itself (its sandbox workers are separate processes)."""
        return psutil.Process(self.process.pid).memory_info().rss / 2 ** 20

    def worker_pids(self) -> set[int]:
        """Live sandbox workers (one that just died and is not yet reaped is left out)."""
        pids = set()
        for child in psutil.Process(self.process.pid).children():
            try:
                if "sandbox_worker" in " ".join(child.cmdline()):
                    pids.add(child.pid)
            except psutil.Error:
                continue
        return pids

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)


@contextmanager
def serve_in_process(home: Path, **env: str) -> Iterator[ServerProcess]:
    """Serve `home` on a free port until the block ends (SIGTERM, then SIGKILL of the whole group)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "serve", "--port", str(port)],
        env={**os.environ, "ONEMAP_HOME": str(home), **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/conformance", timeout=5).status_code == 401:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"onemap serve did not start: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    try:
        yield ServerProcess(url, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
