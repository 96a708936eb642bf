"""A process killed after writing data files but before the Delta commit leaves the lake as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyogrio
import shapely
from deltalake import DeltaTable

from lake import delta_io
from lake.contracts import get_contract
from lake.ingest import ingest_source
from lake.registry import PARCELS
from tests.survey_files import PARCELS_CONTRACT, good_parcels, write_geojson

BIG = 300_000


def write_big_gpkg(path: Path, n: int) -> Path:
    """n small square parcels as a GeoPackage (CGCS2000), fields like the contract expects."""
    i = np.arange(n)
    boxes = shapely.box(106.0 + (i % 1000) * 0.0005, 29.0 + (i // 1000) * 0.0005,
                        106.0 + (i % 1000) * 0.0005 + 0.0004, 29.0 + (i // 1000) * 0.0005 + 0.0004)
    table = pa.table({"BSM": [f"B{k:07d}" for k in i], "DLBM": ["0103"] * n, "ZLDWDM": ["500112001001"] * n,
                      "KCXS": np.full(n, 0.05), "geometry": pa.array(shapely.to_wkb(boxes).tolist(), pa.binary())})
    path.parent.mkdir(parents=True, exist_ok=True)
    pyogrio.write_arrow(table, path, driver="GPKG", layer="DLTB", crs="EPSG:4490", geometry_name="geometry",
                        geometry_type="Polygon")
    return path


def _parquet_files(table_dir: Path) -> set[Path]:
    return set(table_dir.rglob("*.parquet"))


def _commits(table_dir: Path) -> int:
    return len(list((table_dir / "_delta_log").glob("*.json")))


def _kill_between_write_and_commit(home: Path, big: Path, table_dir: Path) -> bool:
    """Run the ingest in a child process and SIGKILL it once silver data files exist without their commit."""
    files_before, commits_before = _parquet_files(table_dir), _commits(table_dir)
    child = subprocess.Popen([sys.executable, "-m", "orchestration.cli", "ingest", str(big), "--feed", "test_parcels"],
                             env={**os.environ, "ONEMAP_HOME": str(home)}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while child.poll() is None and time.monotonic() < deadline:
            if _parquet_files(table_dir) - files_before and _commits(table_dir) == commits_before:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                return _commits(table_dir) == commits_before
            time.sleep(0.002)
        return False
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def test_killed_before_commit_leaves_the_lake_unchanged_and_rerun_succeeds(home: Path, write_contract,
                                                                          monkeypatch) -> None:
    feed = write_contract(PARCELS_CONTRACT.replace("landing: parcels/*.geojson", "landing: parcels/*"))
    small = write_geojson(home / "landing/parcels/a.geojson", good_parcels(50))
    big = write_big_gpkg(home / "landing/parcels/big.gpkg", BIG)
    for attempt in range(4):  # the kill window is a fraction of a second; on a busy machine we may miss it
        monkeypatch.setenv("ONEMAP_LAKE", str(home / f"lake-{attempt}"))
        ingest_source(small, get_contract(feed))
        table_dir = Path(PARCELS.uri)
        # 1 MB data files (a Delta table property delta-rs writes by): the big write lands as many files, one after
        # another, before its commit, so the kill window is ~0.2 s instead of the moment between one file and the log
        DeltaTable(str(table_dir)).alter.set_table_properties({"delta.targetFileSize": str(1 << 20)})
        version, rows = delta_io.open_table(PARCELS).version(), delta_io.read_table(PARCELS).num_rows
        if _kill_between_write_and_commit(home, big, table_dir):
            break
    else:
        raise AssertionError("could not catch the writer between its data files and its commit in 4 attempts")
    assert delta_io.open_table(PARCELS).version() == version
    assert delta_io.read_table(PARCELS).num_rows == rows
    assert _parquet_files(table_dir), "orphan data files of the killed write are on disk but not in the table"

    result = ingest_source(big, get_contract(feed))
    assert result.status == "ingested" and result.rows_silver == BIG
    assert delta_io.read_table(PARCELS).num_rows == rows + BIG
