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


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid` (the CLI, `dagster dev` in its own group, their children)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _ignore_sigint() -> None:
    """Start as a shell's background job (`&` without job control: scripts, CI) does: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ui_serves_the_code_location_and_stops_on_ctrl_c(home: Path, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "ui.log"
    with log.open("wb") as output:
        ui = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "ui", "--port", str(port)],
                              env={**os.environ, "ONEMAP_HOME": str(home)}, stdout=output, stderr=subprocess.STDOUT,
                              start_new_session=True, preexec_fn=_ignore_sigint)
    try:
        deadline, keys = time.monotonic() + 120, []
        while time.monotonic() < deadline and not keys:
            try:
                keys = _asset_keys(port)
            except (OSError, KeyError, json.JSONDecodeError):
                time.sleep(1)
        assert "silver/parcels" in keys and "silver/districts" in keys, log.read_text()[-3000:]
        os.killpg(ui.pid, signal.SIGINT)  # what a terminal's Ctrl+C does to the foreground group
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"`onemap ui` still running 60 s after Ctrl+C; its log:\n{log.read_text()[-3000:]}")
        assert ui.returncode == 0, log.read_text()[-3000:]
    finally:
        _kill_session(ui.pid)
        ui.wait()
