"""Shared fixtures: an isolated ONEMAP_HOME per test, the real public files of shared/realdata, feed contracts."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from lake.settings import REPO_ROOT

REALDATA = Path(os.environ.get("ONEMAP_REALDATA", REPO_ROOT.parent / "shared" / "realdata"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ONEMAP_HOME (landing/, feeds/, lake/) for one test."""
    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    (home / "feeds").mkdir()
    monkeypatch.setenv("ONEMAP_HOME", str(home))
    monkeypatch.delenv("ONEMAP_LAKE", raising=False)
    return home


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.exists():
        pytest.skip(f"real public test files not found at {REALDATA} (set ONEMAP_REALDATA)")
    return REALDATA


@pytest.fixture
def write_contract(home: Path):
    """Write a feed contract YAML into $ONEMAP_HOME/feeds and return its feed name."""
    def _write(text: str) -> str:
        body = textwrap.dedent(text)
        name = next(line.split(":", 1)[1].strip() for line in body.splitlines() if line.startswith("feed:"))
        (home / "feeds" / f"{name}.yaml").write_text(body, encoding="utf-8")
        return name
    return _write


def publish_demo_region(home: Path, parcels: int, plant_conflicts: int, imagery_and_cim: bool = False):
    """Generate a demo region into `home` (optionally with the imagery catalog and CIM models), ingest it and
    publish the one map with the default engine; returns the generator's manifest and the publish outcome."""
    from lake.batch_ingest import ingest_landing
    from lake.demo_cim import write_demo_cim
    from lake.demo_imagery import write_demo_imagery
    from lake.demo_region import generate_demo_region
    from quality.wap import run_one_map

    mp = pytest.MonkeyPatch()
    mp.setenv("ONEMAP_HOME", str(home))
    mp.delenv("ONEMAP_LAKE", raising=False)
    tables = ["districts", "parcels", "control_lines", "hazard_points", "buildings"]
    try:
        manifest = generate_demo_region(home / "landing", parcels=parcels, plant_conflicts=plant_conflicts)
        if imagery_and_cim:
            write_demo_imagery(home / "landing")
            write_demo_cim(home / "landing")
            tables.append("stac_items")
        for table in tables:
            failed = [r for r in ingest_landing(table) if r.status == "failed"]
            assert not failed, failed
        return manifest, run_one_map()
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def published_demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small demo home built once per session: survey (2 planted conflicts per rule), imagery catalog with COGs
    and CIM models ingested, and the one map published to gold. Treat it as read-only: set ONEMAP_HOME to it with
    monkeypatch, or `shutil.copytree` it first when a test writes (STAC asset hrefs keep pointing at this copy)."""
    home = tmp_path_factory.mktemp("published_demo") / "home"
    manifest, outcome = publish_demo_region(home, parcels=1000, plant_conflicts=2, imagery_and_cim=True)
    return {"home": home, "manifest": manifest, "build_id": outcome.build_id}


@pytest.fixture(scope="session")
def twin_demo(published_demo: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The published demo with its twin tiles built (buildings, terrain, manifest) in a home of its own whose lake
    is published_demo's. Read-only: set ONEMAP_HOME and ONEMAP_LAKE to `home` and `lake` with monkeypatch."""
    from lake.settings import current_settings
    from twin_viewer.tiles import build_twin

    home, lake = tmp_path_factory.mktemp("twin_demo") / "home", published_demo["home"] / "lake"
    mp = pytest.MonkeyPatch()
    mp.setenv("ONEMAP_HOME", str(home))
    mp.setenv("ONEMAP_LAKE", str(lake))
    try:
        manifest = build_twin(current_settings())
    finally:
        mp.undo()
    return {**published_demo, "home": home, "lake": lake, "twin_manifest": manifest}


def copy_shapefile(src: Path, dest_dir: Path, skip: tuple[str, ...] = ()) -> Path:
    """Copy a shapefile's parts (optionally leaving some out) and return the new .shp path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    for part in src.parent.glob(src.stem + ".*"):
        if part.suffix.lower() not in skip:
            shutil.copy(part, dest_dir / part.name)
    return dest_dir / src.name


@pytest.fixture(scope="session")
def planted_region_published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small planted demo region (3 conflicts per rule), ingested and published once by the default engine.

    Tests that build again copy it (`copy_home`) so each keeps its own lake.
    """
    home = tmp_path_factory.mktemp("planted") / "home"
    manifest, _ = publish_demo_region(home, parcels=400, plant_conflicts=3)
    (home / "planted.json").write_text(json.dumps(manifest.planted_conflicts, default=str), encoding="utf-8")
    return home


def copy_home(src: Path, dest: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of a prepared ONEMAP_HOME, made current for the test."""
    shutil.copytree(src, dest)
    monkeypatch.setenv("ONEMAP_HOME", str(dest))
    monkeypatch.delenv("ONEMAP_LAKE", raising=False)
    return dest
