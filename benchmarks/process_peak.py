"""Run a benchmark step in a child process and measure the peak memory of its whole process tree.

A child per step gives each engine its own peak (getrusage's RUSAGE_CHILDREN only keeps the largest child so far),
and the tree sum counts what an engine starts besides itself: dbt, a JVM, Python workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

import psutil


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(module_args: list[str], env: dict) -> tuple[dict, float]:
    """Run `python -m <module_args>`, sampling its process tree's RSS every 0.2 s; return the child's last stdout
    line as JSON and the peak in MiB. A failing child raises with the end of its stderr."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-m", *module_args], env=env, stdout=out, stderr=err, text=True)
        process, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            peak = max(peak, _tree_rss(process))
            time.sleep(0.2)
        out.seek(0), err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(f"{' '.join(module_args)} failed with exit code {child.returncode}: "
                               f"{err.read()[-3000:]}")
        return json.loads(out.read().strip().splitlines()[-1]), peak / 2**20
