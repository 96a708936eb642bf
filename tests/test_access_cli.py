"""`onemap access …` and `onemap serve` as an operator runs them: grant, issue, serve, stop, read the audit.

Stopping the server normally (SIGINT, as Ctrl+C) must commit every queued audit record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lake.grid_parcels import write_parcel_grid
from twin_viewer.server.run import free_port
from tests.test_cli import onemap


def test_access_commands_serve_and_audit_after_shutdown(home: Path) -> None:
    write_parcel_grid(10, ["500112"])
    assert onemap(home, "access", "department", "create", "emergency").returncode == 0
    granted = onemap(home, "access", "grant", "emergency", "silver/parcels", "--column", "parcel_id",
                     "--column", "geometry", "--district", "500112")
    assert granted.returncode == 0, granted.stderr
    bad = onemap(home, "access", "grant", "emergency", "silver/parcels", "--column", "secret")
    assert bad.returncode == 1 and "has no column secret" in bad.stderr
    issued = onemap(home, "access", "token", "issue", "emergency")
    token = issued.stdout.strip().splitlines()[-1]
    listed = json.loads(onemap(home, "access", "department", "list", "--json").stdout)
    assert listed[0]["department"] == "emergency" and token not in json.dumps(listed)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "serve", "--port", str(port)],
                              env={**os.environ, "ONEMAP_HOME": str(home)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read() if server.poll() \
                    is not None else "server did not start"
                time.sleep(0.2)
        headers = {"Authorization": f"Bearer {token}"}
        body = httpx.get(f"{url}/collections/parcels/items", headers=headers, params={"limit": 1000},
                         timeout=60).json()
        assert len(body["features"]) == 100
        assert httpx.get(f"{url}/collections/hazard_points", headers=headers, timeout=60).status_code == 403
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)

    revoked = onemap(home, "access", "token", "revoke", token.split("_")[1])
    assert revoked.returncode == 0
    audit = onemap(home, "access", "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    rows = json.loads(audit.stdout)
    seen = {(r["endpoint"], r["status"], r["department"]) for r in rows}
    assert ("/collections/parcels/items", 200, "emergency") in seen
    assert ("/collections/hazard_points", 403, "emergency") in seen
    assert ("/", 401, None) in seen
    table = onemap(home, "access", "audit")
    assert "refused" in table.stdout


def test_token_expiry_and_department_delete(home: Path) -> None:
    """`token issue --expires-in` and `department delete`: the deleted department's tokens die with it, and a new
    department of the same name gets a new identity."""
    assert onemap(home, "access", "department", "create", "emergency").returncode == 0
    issued = onemap(home, "access", "token", "issue", "emergency", "--expires-in", "30d")
    assert issued.returncode == 0 and "valid for 30d" in issued.stdout
    bad = onemap(home, "access", "token", "issue", "emergency", "--expires-in", "soon")
    assert bad.returncode == 1 and "duration 'soon'" in bad.stderr
    before = json.loads(onemap(home, "access", "department", "list", "--json").stdout)
    assert "active until" in before[0]["tokens"][0]

    deleted = onemap(home, "access", "department", "delete", "emergency")
    assert deleted.returncode == 0 and "1 active token(s) revoked" in deleted.stdout
    assert json.loads(onemap(home, "access", "department", "list", "--json").stdout) == []
    assert onemap(home, "access", "department", "create", "emergency").returncode == 0
    after = json.loads(onemap(home, "access", "department", "list", "--json").stdout)
    assert after[0]["id"] != before[0]["id"] and after[0]["tokens"] == []
    missing = onemap(home, "access", "department", "delete", "nobody")
    assert missing.returncode == 1 and "no department 'nobody'" in missing.stderr
