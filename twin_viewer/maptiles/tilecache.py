"""Rendered tiles on disk under `$ONEMAP_HOME/twin/cache/<kind>/<layer>/<key>/z/x/y.png`.

The key names the data a tile was drawn from (gold build id, silver versions), so a new publish or ingest
simply starts a new folder; folders of older builds are removed when the first tile of a new build is written.
Writes go through a temporary file and a rename, so a reader never sees half a PNG.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def tile_path(folder: Path, z: int, x: int, y: int) -> Path:
    return folder / str(z) / str(x) / f"{y}.png"


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def prune_stale(parent: Path, current: str) -> None:
    """Remove the key folders under `parent` that belong to an older build (names not starting with `current`)."""
    if not parent.is_dir():
        return
    for child in parent.iterdir():
        if child.is_dir() and not child.name.startswith(current) and not child.name.startswith("."):
            shutil.rmtree(child, ignore_errors=True)
