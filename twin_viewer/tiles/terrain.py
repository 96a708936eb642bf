"""Terrain as quantized-mesh-1.0 tiles (`{z}/{x}/{y}.terrain`) with `layer.json`, as CesiumTerrainProvider reads.

Geographic tiling scheme (EPSG:4326, two level-0 tiles, TMS rows counted from the south). Each tile is a regular
GRID × GRID mesh of DEM heights (bilinear, 0 outside the DEM); neighbours share their edge samples exactly, and
CesiumJS adds skirts between levels. Levels 0..N cover the region's extent, N chosen so the finest grid is about as
fine as the DEM. The encoding (header with ECEF centre, height range, bounding sphere and horizon occlusion point;
zig-zag delta u/v/height; high-water-mark indices; edge vertex lists) is quantized-mesh-encoder's.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import quantized_mesh_encoder

from twin_viewer.tiles.dem import Dem

GRID = 65
MAX_LEVEL_CAP = 14


def max_level(dem: Dem) -> int:
    """The level whose grid spacing (180° / 2^z / (GRID - 1)) is first at or below the DEM's pixel size."""
    return max(0, min(MAX_LEVEL_CAP, math.ceil(math.log2(180.0 / ((GRID - 1) * dem.resolution_deg)))))


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    size = 180.0 / 2**z
    return -180.0 + x * size, -90.0 + y * size, -180.0 + (x + 1) * size, -90.0 + (y + 1) * size


def tile_range(extent: tuple[float, float, float, float], z: int) -> dict[str, int]:
    """The TMS tiles of level z covering `extent` (all tiles of level 0, which CesiumJS always requests)."""
    cols, rows = 2 ** (z + 1), 2**z
    if z == 0:
        return {"startX": 0, "startY": 0, "endX": cols - 1, "endY": rows - 1}
    size = 180.0 / 2**z
    west, south, east, north = extent
    clamp = lambda v, top: min(max(v, 0), top)  # noqa: E731
    return {"startX": clamp(math.floor((west + 180) / size), cols - 1),
            "startY": clamp(math.floor((south + 90) / size), rows - 1),
            "endX": clamp(math.floor((east + 180) / size), cols - 1),
            "endY": clamp(math.floor((north + 90) / size), rows - 1)}


def _grid_triangles() -> np.ndarray:
    """Two counter-clockwise triangles (u east, v north) per cell of the GRID × GRID vertices (row-major from
    the south-west)."""
    i, j = np.meshgrid(np.arange(GRID - 1), np.arange(GRID - 1))
    v00 = (j * GRID + i).ravel()
    v10, v01 = v00 + 1, v00 + GRID
    v11 = v01 + 1
    return np.concatenate([np.column_stack([v00, v10, v11]), np.column_stack([v00, v11, v01])]).astype(np.uint32)


def encode_tile(dem: Dem, z: int, x: int, y: int, triangles: np.ndarray) -> bytes:
    west, south, east, north = tile_bounds(z, x, y)
    lon, lat = np.meshgrid(np.linspace(west, east, GRID), np.linspace(south, north, GRID))
    positions = np.column_stack([lon.ravel(), lat.ravel(), dem.sample(lon.ravel(), lat.ravel())])
    out = io.BytesIO()
    quantized_mesh_encoder.encode(out, positions, triangles, bounds=(west, south, east, north))
    return out.getvalue()


def write_terrain(dem: Dem, extent: tuple[float, float, float, float], folder: Path) -> dict:
    """Write every tile of levels 0..max_level over `extent` and layer.json; returns the tile count."""
    triangles = _grid_triangles()
    top = max_level(dem)
    available, count = [], 0
    for z in range(top + 1):
        r = tile_range(extent, z)
        for x in range(r["startX"], r["endX"] + 1):
            column = folder / str(z) / str(x)
            column.mkdir(parents=True, exist_ok=True)
            for y in range(r["startY"], r["endY"] + 1):
                (column / f"{y}.terrain").write_bytes(encode_tile(dem, z, x, y, triangles))
                count += 1
        available.append([r])
    layer = {"tilejson": "2.1.0", "name": "onemap-twin-terrain", "description": f"From {Path(dem.href).name}",
             "version": "1.0.0", "format": "quantized-mesh-1.0", "scheme": "tms", "projection": "EPSG:4326",
             "bounds": [-180.0, -90.0, 180.0, 90.0], "tiles": ["{z}/{x}/{y}.terrain"], "minzoom": 0,
             "maxzoom": top, "available": available, "attribution": ""}
    (folder / "layer.json").write_text(json.dumps(layer, indent=1), encoding="utf-8")
    return {"tiles": count, "max_level": top}
