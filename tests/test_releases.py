"""Gold is served as whole releases: a build killed (real SIGKILL) at each commit boundary of its publish leaves every
reader on the previous release, the next build publishes, and an operator can list, show and roll back releases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lake import delta_io
from lake.errors import OnemapError
from lake.faults import FAULT_AFTER
from lake.publish import gold_versions
from lake.query import run_query
from lake.registry import GOLD_CONFLICTS, GOLD_DISTRICT_INDICATORS, GOLD_ONE_MAP_PARCELS, GOLD_TABLES, PARCELS, \
    PUBLISH_LOG, TableSpec
from lake.releases import NotReleased, Release, current_release, pinned_version, read_gold
from quality.wap import run_one_map
from tests.conftest import copy_home

BUILD = "import sys\nfrom quality.wap import run_one_map\nrun_one_map(sys.argv[1:] or None)\n"
FORESTS = {"0301": "0305", "0305": "0301"}  # 乔木林地 <-> 灌木林地: a new map that passes every gate


def onemap(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "ONEMAP_HOME": str(home), "COLUMNS": "200"}, timeout=300)


def build_killed_after(home: Path, boundary: str, districts: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """A real build in a child process that SIGKILLs itself right after the commit named by `boundary`."""
    script = home.parent / "build.py"
    script.write_text(BUILD, encoding="utf-8")
    return subprocess.run([sys.executable, str(script), *districts], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "ONEMAP_HOME": str(home), FAULT_AFTER: boundary})


def rows(table: pa.Table, spec: TableSpec) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[k]) for k in spec.primary_key))


def in_district(table_rows: list[dict], district: str) -> list[dict]:
    return [r for r in table_rows if r["district_code"] == district]


def snapshot(release: Release) -> dict[str, list[dict]]:
    """Every gold table's rows at the release's versions: what readers must see while it is current."""
    return {spec.key: rows(delta_io.read_table(spec, version=release.versions[spec.key]), spec) for spec in GOLD_TABLES}


def swap_forests(districts: list[str]) -> None:
    """Change silver parcels (latest survey) of the districts, so the next build's gold differs from the release."""
    for district in districts:
        table = delta_io.read_table(PARCELS).filter(pc.field("district_code") == district)
        latest = max(table.column("survey_year").to_pylist())
        codes = [FORESTS.get(c, c) if y == latest else c
                 for c, y in zip(table.column("land_class_code").to_pylist(), table.column("survey_year").to_pylist())]
        assert codes != table.column("land_class_code").to_pylist(), district
        table = table.set_column(table.schema.get_field_index("land_class_code"), "land_class_code", pa.array(codes))
        delta_io.replace_where(PARCELS, table, "district_code", district)


def assert_served(home: Path, release: Release, expected: dict[str, list[dict]]) -> None:
    """`onemap query`, `onemap status`, the twin's data reader and its tile state all serve `release`, whole."""
    from twin_viewer.maptiles.lakestate import current_state
    from twin_viewer.server.twin_data import TwinData

    assert current_release().release_id == release.release_id
    out = home.parent / "parcels.parquet"
    query = onemap(home, "query", "select * from one_map_parcels", "--format", "parquet", "--output", str(out))
    assert query.returncode == 0, query.stderr
    assert rows(pq.read_table(out), GOLD_ONE_MAP_PARCELS) == expected[GOLD_ONE_MAP_PARCELS.key]
    for spec in GOLD_TABLES:  # the same views in process, every gold table
        assert rows(run_query(f"select * from {spec.name}"), spec) == expected[spec.key], spec.key
    status = onemap(home, "status", "--json")
    assert status.returncode == 0, status.stderr
    gold = {t["table"]: t for t in json.loads(status.stdout) if t["layer"] == "gold"}
    assert {k: t["version"] for k, t in gold.items()} == release.versions
    assert {k: t["rows"] for k, t in gold.items()} == {k: len(v) for k, v in expected.items()}
    assert {t["release"] for t in gold.values()} == {release.release_id}
    twin = TwinData(recheck_s=0)
    assert twin.build_id() == release.build_id
    for spec in GOLD_TABLES:
        assert rows(twin.gold(spec), spec) == expected[spec.key], spec.key
    state = current_state()
    assert (state.build_id, state.gold_versions) == (release.build_id, release.versions)


def test_a_build_killed_at_each_publish_commit_leaves_the_previous_release_served(
        planted_region_published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = copy_home(planted_region_published, tmp_path / "home", monkeypatch)
    before = current_release()
    served = snapshot(before)
    kept, rebuilt = "500101", "500102"
    swap_forests([kept, rebuilt])

    for boundary in (GOLD_TABLES[0].key, GOLD_TABLES[-1].key):  # after the first gold commit; after the last one
        killed = build_killed_after(home, boundary)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        heads = gold_versions()
        assert heads[boundary] > before.versions[boundary], boundary  # the kill came after that table's commit
        assert rows(delta_io.read_table(GOLD_ONE_MAP_PARCELS), GOLD_ONE_MAP_PARCELS) != served[GOLD_ONE_MAP_PARCELS.key]
        assert_served(home, before, served)
    assert all(heads[k] > before.versions[k] for k in before.versions)  # every head is ahead of the release

    # the next build (one district) publishes over those heads; killed right after its release commit, it is served
    killed = build_killed_after(home, PUBLISH_LOG.key, (rebuilt,))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    after = current_release()
    assert after.release_id != before.release_id and after.districts == rebuilt
    published = snapshot(after)
    assert_served(home, after, published)
    # its partitions lie on the previous release, not on the heads the killed builds left: district `kept` (changed
    # in silver, but not rebuilt by this build) is still what the previous release served
    for spec in (GOLD_ONE_MAP_PARCELS, GOLD_CONFLICTS):
        assert in_district(published[spec.key], kept) == in_district(served[spec.key], kept), spec.key
    parcels = GOLD_ONE_MAP_PARCELS.key
    assert in_district(published[parcels], rebuilt) != in_district(served[parcels], rebuilt)


def test_rollback_serves_the_old_versions_and_refuses_vacuumed_ones(
        planted_region_published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = copy_home(planted_region_published, tmp_path / "home", monkeypatch)
    first = current_release()
    old = snapshot(first)
    swap_forests(["500101"])
    run_one_map()
    second = current_release()
    assert second.release_id != first.release_id and snapshot(second) != old

    listed = onemap(home, "release", "list", "--json")
    assert [r["release_id"] for r in json.loads(listed.stdout)] == [second.release_id, first.release_id]
    assert f"{second.release_id} (current)" in onemap(home, "release", "list").stdout
    shown = json.loads(onemap(home, "release", "show", first.release_id, "--json").stdout)
    assert (shown["build_id"], shown["versions"], shown["unreadable"]) == (first.build_id, first.versions, {})

    rolled = onemap(home, "release", "rollback", first.release_id)
    assert rolled.returncode == 0, rolled.stderr
    third = current_release()
    assert (third.restores, third.build_id, third.versions) == (first.release_id, first.build_id, first.versions)
    assert third.release_id in rolled.stdout
    assert gold_versions() == second.versions  # nothing was rewritten: the heads are where the second build left them
    assert_served(home, third, old)
    status = onemap(home, "status").stdout
    assert f"release {third.release_id} (build {first.build_id}, rollback to {first.release_id}" in status
    again = onemap(home, "release", "rollback", first.release_id)
    assert again.returncode == 1 and "served already" in again.stderr

    assert onemap(home, "release", "rollback", second.release_id).returncode == 0
    for spec in GOLD_TABLES:  # a retention policy removes every file the served (head) versions do not use
        delta_io.open_table(spec).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    refused = onemap(home, "release", "rollback", first.release_id)
    assert refused.returncode == 1
    assert f"cannot roll back to release {first.release_id}" in refused.stderr and "vacuum" in refused.stderr
    assert GOLD_ONE_MAP_PARCELS.key in refused.stderr
    assert current_release().versions == second.versions
    shown = json.loads(onemap(home, "release", "show", first.release_id, "--json").stdout)
    assert GOLD_ONE_MAP_PARCELS.key in shown["unreadable"]


def test_gold_written_before_any_release_is_invisible(home: Path) -> None:
    """What a first publish killed after a gold commit leaves: a gold table no release names."""
    delta_io.overwrite(GOLD_DISTRICT_INDICATORS, GOLD_DISTRICT_INDICATORS.schema.empty_table())
    assert current_release() is None
    with pytest.raises(NotReleased):
        pinned_version(GOLD_DISTRICT_INDICATORS)
    with pytest.raises(NotReleased, match="onemap build"):
        read_gold(GOLD_DISTRICT_INDICATORS)
    assert pinned_version(PARCELS) is None  # other layers: their latest version
    with pytest.raises(OnemapError, match="district_indicators"):
        run_query("select * from district_indicators")
    status = onemap(home, "status", "--json")
    gold = next(t for t in json.loads(status.stdout) if t["table"] == GOLD_DISTRICT_INDICATORS.key)
    assert (gold["version"], gold["head_version"], gold["release"]) == (None, 2, None)
    assert "release: none yet" in onemap(home, "status").stdout


@pytest.mark.spark
def test_spark_reads_gold_at_the_release(planted_region_published: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from lake.spark import read_delta, spark_session

    copy_home(planted_region_published, tmp_path / "home", monkeypatch)
    release = current_release()
    columns = ["conflict_id", "rule_id", "area_m2"]
    expected = sorted(tuple(r.values()) for r in read_gold(GOLD_CONFLICTS, columns).to_pylist())
    head = delta_io.overwrite(GOLD_CONFLICTS, GOLD_CONFLICTS.schema.empty_table())  # as a killed publish leaves it
    assert head > release.versions[GOLD_CONFLICTS.key]
    spark = spark_session("releases")
    assert sorted(tuple(r) for r in read_delta(spark, GOLD_CONFLICTS).select(*columns).collect()) == expected
    assert read_delta(spark, GOLD_CONFLICTS, version=head).count() == 0  # an explicit version is still honoured
