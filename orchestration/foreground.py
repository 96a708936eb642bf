"""Run a long-lived service (`dagster dev`) so that Ctrl+C reaches its parent process only."""

from __future__ import annotations

import signal
import subprocess


def run_until_interrupted(command: list[str]) -> int:
    """Run `command` in a process group of its own and pass Ctrl+C and SIGTERM on to it alone; return its exit code.

    A terminal's Ctrl+C interrupts the whole foreground group. `dagster dev` stops its webserver, daemon and code
    servers itself, through their shutdown pipes; with all of them interrupted at once as well, it sometimes did not
    exit within a minute (seen in CI). Its children still end with it: they watch those pipes and heartbeats.
    """
    child = subprocess.Popen(command, process_group=0)

    def forward(signum: int, frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    return child.wait()
