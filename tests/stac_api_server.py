"""A real STAC API for tests and benchmarks: stac-fastapi-pgstac on a throwaway PostgreSQL + PostGIS cluster.

The cluster lives in a temp folder (initdb, its own port, fsync off), pgstac is installed with `pypgstac migrate`,
items are loaded with pypgstac's Loader, and the API runs under uvicorn in a subprocess on 127.0.0.1.
Nothing is fetched from the network. PostgreSQL refuses to run as root, so as root the cluster runs as the
`postgres` system user.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

PG_BIN = Path(os.environ.get("ONEMAP_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pgstac_unavailable() -> str | None:
    """Why the server cannot start here (for pytest.skip), or None."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL binaries not found in {PG_BIN} (set ONEMAP_PG_BIN)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL cannot be started"
    try:
        import pypgstac  # noqa: F401
        import stac_fastapi.pgstac  # noqa: F401
    except ImportError as exc:
        return f"stac-fastapi-pgstac / pypgstac not installed: {exc}"
    return None


class PgstacServer:
    """Start with `start()`, load with `load()`, stop with `stop()` (also as a context manager)."""

    def __init__(self) -> None:
        # Its own folder under the system temp dir: pytest's tmp_path (mode 700, root's) is closed to `postgres`.
        self.workdir = Path(tempfile.mkdtemp(prefix="onemap-pgstac-"))
        self.pg_port = free_port()
        self.api_port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"
        self._api: subprocess.Popen[bytes] | None = None
        self._pg_started = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _as_postgres(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        _run([*prefix, *cmd])

    def start(self) -> PgstacServer:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        data = self.workdir / "pgdata"
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                          "--no-sync")
        options = (f"-p {self.pg_port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(self.workdir / "postgres.log"),
                          "-o", options, "-w", "start")
        self._pg_started = True
        _run([sys.executable, "-m", "pypgstac.pypgstac", "migrate", "--dsn", self.dsn])
        env = {**os.environ, "PGUSER": "postgres", "PGPASSWORD": "unused", "PGHOST": "127.0.0.1",
               "PGPORT": str(self.pg_port), "PGDATABASE": "postgres"}
        with (self.workdir / "api.log").open("wb") as log:  # the child keeps its own copy of the handle
            self._api = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "stac_fastapi.pgstac.app:create_app", "--factory", "--host",
                 "127.0.0.1", "--port", str(self.api_port), "--log-level", "warning"],
                env=env, stdout=subprocess.DEVNULL, stderr=log)
        self._wait_for_api()

    def _wait_for_api(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._api is not None and self._api.poll() is not None:
                raise RuntimeError(f"STAC API exited: {(self.workdir / 'api.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"STAC API did not answer on {self.url} within {seconds} s")

    def load(self, collections: Iterable[dict[str, Any]], items: Iterable[dict[str, Any]]) -> None:
        """Upsert collections, then items (pgstac needs an item's collection first)."""
        from pypgstac.db import PgstacDB
        from pypgstac.load import Loader, Methods

        with PgstacDB(dsn=self.dsn) as db:
            loader = Loader(db=db)
            loader.load_collections(iter(list(collections)), insert_mode=Methods.upsert)
            loader.load_items(iter(list(items)), insert_mode=Methods.upsert)

    def stop(self) -> None:
        if self._api is not None:
            self._api.terminate()
            try:
                self._api.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._api.kill()
            self._api = None
        if self._pg_started:
            self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.workdir / "pgdata"), "-m", "immediate",
                              "-w", "stop")
            self._pg_started = False
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PgstacServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
