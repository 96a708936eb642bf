"""`onemap ui` serves the Dagster UI with our code location loaded, and stops on Ctrl+C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _asset_keys(port: int) -> list[str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", method="POST",
                                     data=json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        nodes = json.loads(response.read())["data"]["assetNodes"]
    return ["/".join(n["assetKey"]["path"]) for n in nodes]


def test_ui_serves_the_code_location(home: Path) -> None:
    port = _free_port()
    ui = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "ui", "--port", str(port)],
                          env={**os.environ, "ONEMAP_HOME": str(home)}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, keys = time.monotonic() + 120, []
        while time.monotonic() < deadline and not keys:
            try:
                keys = _asset_keys(port)
            except (OSError, KeyError, json.JSONDecodeError):
                time.sleep(1)
        assert "silver/parcels" in keys and "silver/districts" in keys
        os.killpg(ui.pid, signal.SIGINT)
        assert ui.wait(timeout=60) is not None
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
