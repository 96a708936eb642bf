"""Build the twin's files under $ONEMAP_HOME/twin: buildings tileset, terrain, manifest.json (written last).

Runs without Dagster (`build_twin(settings)`); the Dagster asset only calls it. Each folder is built beside the
live one and swapped in by renames, and the manifest is replaced atomically at the end, so a server never serves a
half-written tileset (a client may at worst see the previous build's tiles during the swap).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from lake import delta_io
from lake.publish import latest_published
from lake.registry import BUILDINGS, DISTRICTS
from lake.settings import Settings
from twin_viewer.tiles.dem import load_dem
from twin_viewer.tiles.geometry import Frame, load_soup
from twin_viewer.tiles.terrain import write_terrain
from twin_viewer.tiles.tileset import write_tileset

log = logging.getLogger(__name__)
BUILT_FOLDERS = ("buildings", "terrain")


def region_extent() -> tuple[float, float, float, float] | None:
    """West, south, east, north (degrees) of the districts, else of the buildings; None when both are empty."""
    for spec in (DISTRICTS, BUILDINGS):
        table = delta_io.read_table(spec, columns=["bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax"])
        if table.num_rows:
            return (pc.min(table["bbox_xmin"]).as_py(), pc.min(table["bbox_ymin"]).as_py(),
                    pc.max(table["bbox_xmax"]).as_py(), pc.max(table["bbox_ymax"]).as_py())
    return None


def build_twin(settings: Settings) -> dict:
    """Build everything and return the manifest (also written to twin/manifest.json)."""
    root = settings.twin
    staging = root / f".build-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        extent = region_extent()
        dem_lookup = load_dem()
        dem = dem_lookup.dem
        if extent is None:
            extent = dem.bounds if dem is not None else (0.0, 0.0, 0.0, 0.0)
        frame = Frame((extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2, 0.0)
        ground = dem.sample if dem is not None else (lambda lon, lat: np.zeros(np.shape(lon)))
        soup = load_soup(frame, ground)
        write_tileset(soup, frame, staging / "buildings")
        terrain = {"available": False, "layer": None, "warning": dem_lookup.warning}
        if dem is not None:
            write_terrain(dem, extent, staging / "terrain")
            terrain = {"available": True, "layer": "terrain/layer.json", "warning": None}
        published = latest_published()
        manifest = {
            "build_id": published[0] if published else None,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "buildings": {"tileset": "buildings/tileset.json", "count": len(soup.anchors), "meshed": soup.meshed,
                          "extruded": soup.extruded, "dropped_degenerate_triangles": soup.dropped_degenerate},
            "terrain": terrain,
            "region": dict(zip(("west", "south", "east", "north"), (float(v) for v in extent), strict=True)),
        }
        _swap_in(staging, root)
        _write_atomically(root / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
        log.info("twin built: %s buildings (%s meshed, %s extruded), terrain %s", manifest["buildings"]["count"],
                 soup.meshed, soup.extruded, "yes" if terrain["available"] else "no")
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, root: Path) -> None:
    """Replace each live folder by its staged build (a missing staged folder removes the live one: no DEM, no
    terrain)."""
    for name in BUILT_FOLDERS:
        live, new, old = root / name, staging / name, staging / f"{name}.old"
        if live.exists():
            live.rename(old)
        if new.exists():
            new.rename(live)
        shutil.rmtree(old, ignore_errors=True)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
