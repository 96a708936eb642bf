"""Run a long-lived service (`dagster dev`) that stops on Ctrl+C or SIGTERM however `onemap ui` was started."""

from __future__ import annotations

import signal
import subprocess


def run_until_interrupted(command: list[str]) -> int:
    """Run `command` in a process group of its own, pass Ctrl+C and SIGTERM on to it alone; return its exit code.

    - A shell that starts `onemap ui` in the background (`&` without job control: scripts, CI) makes it ignore
      SIGINT, and a Python child started with SIGINT ignored keeps ignoring it: `dagster dev` then never stopped on
      Ctrl+C. Installing our handler before the child starts gives the child SIGINT's default action back.
    - `dagster dev` stops its webserver, daemon and code servers itself (their shutdown pipes), so only it is told;
      a terminal's Ctrl+C, sent to the whole foreground group, reaches this process and is forwarded.
    """
    child: subprocess.Popen | None = None
    interrupted = False

    def forward(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    child = subprocess.Popen(command, process_group=0)
    if interrupted:  # arrived while the child was starting
        child.send_signal(signal.SIGINT)
    return child.wait()
