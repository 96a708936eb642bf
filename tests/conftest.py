"""Shared fixtures: an isolated ONEMAP_HOME per test, the real public files of shared/realdata, feed contracts."""

from __future__ import annotations

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


def copy_shapefile(src: Path, dest_dir: Path, skip: tuple[str, ...] = ()) -> Path:
    """Copy a shapefile's parts (optionally leaving some out) and return the new .shp path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    for part in src.parent.glob(src.stem + ".*"):
        if part.suffix.lower() not in skip:
            shutil.copy(part, dest_dir / part.name)
    return dest_dir / src.name
