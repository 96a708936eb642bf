"""Crash hooks for fault tests: kill this process at a named commit boundary, as a power cut or OOM kill would."""

from __future__ import annotations

import os
import signal

FAULT_AFTER = "ONEMAP_FAULT_AFTER"


def crash_point(key: str) -> None:
    """Tests set ONEMAP_FAULT_AFTER=<table key> to SIGKILL this process right after that table's commit."""
    if os.environ.get(FAULT_AFTER) == key:
        os.kill(os.getpid(), signal.SIGKILL)
