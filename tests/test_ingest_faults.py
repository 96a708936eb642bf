"""Ingest batches under faults, in real processes: SIGKILL at each commit, a full disk, a read-only lake, two
writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

from lake import delta_io
from lake.faults import FAULT_AFTER
from lake.contracts import get_contract
from lake.ingest import VERSIONS_METADATA, ingest_source, source_uri_of
from lake.registry import BRONZE, INGEST_LOG, PARCELS, QUARANTINE, TableSpec
from lake.settings import REPO_ROOT
from tests.survey_files import PARCELS_CONTRACT, good_parcels, parcel, write_geojson

TABLES = (QUARANTINE["parcels"], PARCELS, BRONZE["parcels"])


def ingest(path: Path, feed: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestration.cli", "ingest", str(path), "--feed", feed],
                          env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def start_ingest(path: Path, feed: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestration.cli", "ingest", str(path), "--feed", feed],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows_of(spec: TableSpec, path: Path) -> int:
    uri = source_uri_of(path)
    return sum(1 for u in delta_io.read_table(spec, ["_source_uri"]).column("_source_uri").to_pylist() if u == uri)


def log_rows(path: Path) -> list[dict]:
    log = delta_io.read_table(INGEST_LOG)
    return sorted((r for r in log.to_pylist() if r["source_uri"] == source_uri_of(path)),
                  key=lambda r: r["finished_at"])


def contents() -> dict[str, list[tuple]]:
    """Every parcels table's rows by (source, sha256, row number): what a reader would see."""
    columns = ["_source_uri", "_source_sha256", "_row_number"]
    return {s.key: sorted(zip(*delta_io.read_table(s, columns).to_pydict().values())) for s in TABLES}


def assert_reconciles(path: Path, records: int) -> None:
    """The delivery is in the lake whole: silver + quarantine = records in the file = bronze, all of this content."""
    assert rows_of(PARCELS, path) + rows_of(QUARANTINE["parcels"], path) == records
    assert rows_of(BRONZE["parcels"], path) == records
    bronze = delta_io.read_table(BRONZE["parcels"], ["_source_uri", "_source_sha256"]).to_pylist()
    shas = {r["_source_sha256"] for r in bronze if r["_source_uri"] == source_uri_of(path)}
    latest = max((r for r in log_rows(path) if r["status"] == "succeeded"), key=lambda r: r["finished_at"])
    assert shas == {latest["source_sha256"]}


def one_clear_line(stderr: str, *words: str) -> str:
    """The failure is one line naming the table and the fix; no Rust panic, no Python traceback."""
    assert "panicked" not in stderr and "Traceback" not in stderr and "stack backtrace" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if all(w in line for w in words)]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def feed(write_contract) -> str:
    return write_contract(PARCELS_CONTRACT)


def v1(path: Path) -> Path:
    return write_geojson(path, good_parcels(12) + [parcel("BAD1", dlbm="9999")])


def v2(path: Path, n: int = 10) -> Path:
    changed = good_parcels(n)
    for f in changed:
        f["properties"]["DLBM"] = "0701"
    return write_geojson(path, changed + [parcel("BAD2", dlbm="9999"), parcel("BAD3", dlbm="9998")])


@pytest.mark.parametrize("boundary", ["quarantine/parcels", "silver/parcels", "bronze/parcels", "meta/ingest_log"])
def test_killed_at_each_commit_the_rerun_completes_the_batch(home: Path, feed: str, boundary: str) -> None:
    path = v1(home / "landing/parcels/a.geojson")
    assert ingest(path, feed).returncode == 0
    v2(path)
    killed = ingest(path, feed, **{FAULT_AFTER: boundary})
    assert killed.returncode == -9, killed.stderr
    logged = [r["status"] for r in log_rows(path)]
    assert logged == ["succeeded"] * (2 if boundary == "meta/ingest_log" else 1)  # the commit point, or nothing

    rerun = ingest(path, feed)
    assert rerun.returncode == 0, rerun.stderr
    assert ("skipped" if boundary == "meta/ingest_log" else "ingested") in rerun.stdout
    assert_reconciles(path, 12)
    classes = set(delta_io.read_table(PARCELS, ["land_class_code"]).column("land_class_code").to_pylist())
    assert classes == {"0701"}
    # the commit point names the versions the batch left, which are the heads now
    versions = json.loads(delta_io.open_table(INGEST_LOG).history(1)[0][VERSIONS_METADATA])
    assert versions == {s.key: delta_io.open_table(s).version() for s in TABLES}


@pytest.fixture
def small_fs(tmp_path: Path) -> Path:
    """A real 16 MB file system (tmpfs) to hold the lake; skipped where mounting is not permitted."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_fails_in_one_line_undoes_the_batch_and_the_rerun_succeeds(home: Path, feed: str, small_fs: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEMAP_LAKE", str(small_fs / "lake"))
    path = v1(home / "landing/parcels/a.geojson")
    assert ingest(path, feed).returncode == 0
    big = v2(path, 4000)
    before = contents()
    stat = os.statvfs(small_fs)
    filler = small_fs / "filler"
    filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 160_000))  # room for small commits, not the batch

    full = ingest(big, feed)
    assert full.returncode == 1
    line = one_clear_line(full.stderr, "full")
    assert "parcels" in line and "free space" in line
    assert contents() == before  # quarantine's commit (it fits) was undone when silver or bronze did not fit
    assert [r["status"] for r in log_rows(path)] == ["succeeded", "failed"]
    assert "No space left on device" in log_rows(path)[-1]["message"]

    filler.unlink()
    rerun = ingest(big, feed)
    assert rerun.returncode == 0 and "ingested" in rerun.stdout, rerun.stderr
    assert_reconciles(path, 4002)


def test_read_only_lake_fails_in_one_line(home: Path, feed: str, small_fs: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEMAP_LAKE", str(small_fs / "lake"))
    path = v1(home / "landing/parcels/a.geojson")
    assert ingest(path, feed).returncode == 0
    v2(path)
    before = contents()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        refused = ingest(path, feed)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert refused.returncode == 1
    line = one_clear_line(refused.stderr, "read-only")
    assert "parcels" in line and "remount it read-write" in line
    assert contents() == before
    assert ingest(path, feed).returncode == 0  # writable again: the delivery was not marked ingested
    assert_reconciles(path, 12)


def test_concurrent_ingests_of_disjoint_sources_into_one_table_lose_nothing(home: Path, feed: str) -> None:
    paths = [write_geojson(home / f"landing/parcels/{p}.geojson",
                           good_parcels(300, prefix=p) + [parcel(f"{p}BAD", dlbm="9999")]) for p in ("A", "B", "C")]
    runs = [start_ingest(p, feed) for p in paths]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    for p in paths:
        assert_reconciles(p, 301)
        assert [r["status"] for r in log_rows(p)] == ["succeeded"]
    assert delta_io.read_table(PARCELS).num_rows == 900


def test_concurrent_changed_copies_of_one_source_and_the_original_again(home: Path, feed: str) -> None:
    original = v1(home / "landing/parcels/district.geojson")
    assert ingest(original, feed).returncode == 0
    copies = []
    for name, code in (("copy1", "0201"), ("copy2", "0301")):
        features = good_parcels(12)
        for f in features:
            f["properties"]["DLBM"] = code
        copies.append(write_geojson(home / f"landing/parcels/{name}.geojson", features))
    runs = [start_ingest(c, feed) for c in copies]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    silver = delta_io.read_table(PARCELS)
    assert silver.num_rows == 12  # same keys: replaced, never duplicated
    assert set(silver.column("_source_uri").to_pylist()) <= {source_uri_of(c) for c in copies}
    for c in copies:
        assert rows_of(BRONZE["parcels"], c) == 12 and [r["status"] for r in log_rows(c)] == ["succeeded"]

    again = ingest(original, feed)  # its rows were replaced by the copies: the lake no longer holds it
    assert again.returncode == 0 and "ingested" in again.stdout, again.stdout
    assert_reconciles(original, 13)
    silver = delta_io.read_table(PARCELS)
    assert set(silver.column("_source_uri").to_pylist()) == {source_uri_of(original)}
    assert pc.count_distinct(silver.column("land_class_code")).as_py() == 1
    assert "skipped" in ingest(original, feed).stdout  # now it is what the lake holds


def test_concurrent_ingests_of_the_same_file_lose_and_duplicate_nothing(home: Path, feed: str) -> None:
    path = v1(home / "landing/parcels/a.geojson")
    runs = [start_ingest(path, feed) for _ in range(2)]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    assert_reconciles(path, 13)
    assert delta_io.read_table(PARCELS).num_rows == 12
    assert "succeeded" in [r["status"] for r in log_rows(path)]


def test_a_batch_without_quarantined_rows_commits_nothing_to_quarantine(home: Path, feed: str) -> None:
    for name in ("a", "b"):
        ingest_source(write_geojson(home / f"landing/parcels/{name}.geojson", good_parcels(5, prefix=name)),
                      get_contract(feed))
    assert delta_io.open_table(QUARANTINE["parcels"]) is None  # never an empty replace, not even a first one
