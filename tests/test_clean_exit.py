"""Processes that touch Delta tables exit 0, every time.

delta-rs's default Arrow dataset reads through a Python filesystem; a process that read a table and exited then
aborted (`terminate called without an active exception`, exit -6) in about half of all runs, so a successful
ingest could report failure to a shell or a scheduler. Every read now goes through lake.delta_io.dataset with
Arrow's native filesystem. These tests run real processes many times and require exit 0 from each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lake.grid_parcels import write_parcel_grid
from tests.survey_files import PARCELS_CONTRACT, good_parcels, write_geojson

BARE_READ = """
import sys
from deltalake import DeltaTable
from lake import delta_io
print(delta_io.read_snapshot(DeltaTable(sys.argv[1])).num_rows)
"""


def run_many(commands: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    """Run the commands two at a time (the machine's cores), each a fresh process."""
    def one(command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, commands))


def assert_all_exit_zero(results: list[subprocess.CompletedProcess]) -> None:
    bad = [(r.args[-1] if r.args else "", r.returncode, r.stderr[-300:]) for r in results if r.returncode != 0]
    assert not bad, f"{len(bad)} of {len(results)} runs did not exit 0; first: {bad[0]}"


@pytest.fixture
def lake_home(home: Path, write_contract) -> Path:
    """A lake with a parcel grid and one ingested survey delivery."""
    write_parcel_grid(10, ["500112"])
    write_contract(PARCELS_CONTRACT)
    write_geojson(delivery(home), good_parcels(20))
    env = {**os.environ, "ONEMAP_HOME": str(home)}
    first = subprocess.run([sys.executable, "-m", "orchestration.cli", "ingest", str(delivery(home)), "--feed",
                            "test_parcels"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    return home


def delivery(home: Path) -> Path:
    return home / "landing/parcels/a.geojson"


def cli_runs(home: Path, runs: int) -> list[list[str]]:
    cli = [sys.executable, "-m", "orchestration.cli"]
    return ([[*cli, "ingest", str(delivery(home)), "--feed", "test_parcels"]] * runs + [[*cli, "status", "--json"]] * runs +
            [[*cli, "query", "select count(*) from parcels", "--format", "csv"]] * runs)


def test_bare_delta_read_exits_cleanly_100_times(lake_home: Path) -> None:
    table = lake_home / "lake" / "silver" / "parcels"
    results = run_many([[sys.executable, "-c", BARE_READ, str(table)]] * 100, dict(os.environ))
    assert_all_exit_zero(results)
    assert {r.stdout.strip() for r in results} == {"120"}  # 100 grid parcels + 20 delivered


def test_cli_commands_exit_cleanly(lake_home: Path) -> None:
    results = run_many(cli_runs(lake_home, 10), {**os.environ, "ONEMAP_HOME": str(lake_home)})
    assert_all_exit_zero(results)
    assert all("already ingested" in r.stdout for r in results[:10])


@pytest.mark.slow
def test_cli_commands_exit_cleanly_100_times(lake_home: Path) -> None:
    results = run_many(cli_runs(lake_home, 100), {**os.environ, "ONEMAP_HOME": str(lake_home)})
    assert_all_exit_zero(results)
