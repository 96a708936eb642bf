"""A throwaway PostgreSQL 15 + PostGIS cluster on a free port (initdb, pg_ctl), removed when the block ends.

PostgreSQL refuses to run as root, so under root the server runs as the `postgres` system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from twin_viewer.server.run import free_port

PG_BIN = Path(os.environ.get("ONEMAP_PG_BIN", "/usr/lib/postgresql/15/bin"))
SETTINGS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=1GB "
            "-c work_mem=64MB -c max_wal_size=4GB -c listen_addresses=127.0.0.1")


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgis_cluster() -> Iterator[str]:
    """Yield a libpq DSN of a fresh database with the postgis extension."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL binaries not found in {PG_BIN}; install postgresql-15-postgis-3 "
                           "(make setup) or set ONEMAP_PG_BIN")
    root = Path(tempfile.mkdtemp(prefix="onemap-pg-"))
    data, port = root / "data", free_port()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    subprocess.run(_as_server_user([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                    "--no-sync"]), check=True, capture_output=True)
    subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                                    "-o", f"-p {port} -k {root} {SETTINGS}", "start"]), check=True,
                   capture_output=True)
    try:
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute("CREATE EXTENSION postgis")
        yield dsn
    finally:
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
