"""Terrain as quantized-mesh-1.0 tiles (`{z}/{x}/{y}.terrain`) with `layer.json`, as CesiumTerrainProvider reads.

Geographic tiling scheme (EPSG:4326, two level-0 tiles, TMS rows counted from the south). Each tile is a regular
grid mesh of DEM heights (bilinear, 0 outside the DEM); neighbours share their edge samples exactly, and CesiumJS
adds skirts between levels. The build writes levels 0..N over the region's extent, N chosen so the finest grid
(GRID × GRID) is about as fine as the DEM, and keeps the DEM beside them (`dem.npz`). Levels N+1..SERVED_MAX_LEVEL
are declared in layer.json too and cut from that DEM when asked for (`deep_tile`, served by `onemap serve`): they
add no detail, but without them CesiumJS upsamples a close view's terrain from level N one level per frame, which
in software WebGL was a third of the first view's time. Their grids halve with each level (down to MIN_GRID), so a
deep tile keeps the DEM's spacing instead of 65 × 65 vertices over a fraction of a pixel. The encoding (header with
ECEF centre, height range, bounding sphere and horizon occlusion point; zig-zag delta u/v/height; high-water-mark
indices; edge vertex lists) is quantized-mesh-encoder's.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import zipfile
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from quantized_mesh_encoder.encode import (compute_header, encode_header, interp_positions, write_edge_indices,
                                           write_indices, write_vertices)

from lake.errors import OnemapError
from twin_viewer.tiles.dem import Dem

GRID = 65
MIN_GRID = 9
MAX_LEVEL_CAP = 14
SERVED_MAX_LEVEL = 18  # about 70 m tiles: a street-level view; closer, CesiumJS upsamples
DEM_FILE = "dem.npz"


def max_level(dem: Dem) -> int:
    """The level whose grid spacing (180° / 2^z / (GRID - 1)) is first at or below the DEM's pixel size."""
    return max(0, min(MAX_LEVEL_CAP, math.ceil(math.log2(180.0 / ((GRID - 1) * dem.resolution_deg)))))


def grid_size(z: int, built_max_level: int) -> int:
    """Vertices per tile side: GRID down to the built levels, then halving the cells per level to MIN_GRID."""
    return GRID if z <= built_max_level else max(MIN_GRID - 1, (GRID - 1) >> (z - built_max_level)) + 1


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


@cache
def _grid_triangles(grid: int) -> np.ndarray:
    """Two counter-clockwise triangles (u east, v north) per cell of the grid × grid vertices (row-major from
    the south-west)."""
    i, j = np.meshgrid(np.arange(grid - 1), np.arange(grid - 1))
    v00 = (j * grid + i).ravel()
    v10, v01 = v00 + 1, v00 + grid
    v11 = v01 + 1
    return np.concatenate([np.column_stack([v00, v10, v11]), np.column_stack([v00, v11, v01])]).astype(np.uint32)


def encode_tile(dem: Dem, z: int, x: int, y: int, grid: int = GRID) -> bytes:
    west, south, east, north = tile_bounds(z, x, y)
    lon, lat = np.meshgrid(np.linspace(west, east, grid), np.linspace(south, north, grid))
    positions = np.column_stack([lon.ravel(), lat.ravel(), dem.sample(lon.ravel(), lat.ravel())])
    # quantized_mesh_encoder.encode's steps, but u/v quantized from float64: encode() casts the positions to
    # float32 first, whose ~1e-5° steps put a deep tile's vertices up to 1% of its width off their grid
    out = io.BytesIO()
    encode_header(out, compute_header(positions.astype(np.float32), None))
    uvh = interp_positions(positions, bounds=(west, south, east, north))
    write_vertices(out, uvh, len(uvh))
    write_indices(out, _grid_triangles(grid), len(uvh))
    write_edge_indices(out, uvh, len(uvh))
    return out.getvalue()


def write_terrain(dem: Dem, extent: tuple[float, float, float, float], folder: Path) -> dict:
    """Write every tile of levels 0..max_level over `extent`, the DEM for the deeper levels and layer.json
    (declaring levels up to SERVED_MAX_LEVEL); returns the tile count and both levels."""
    top = max_level(dem)
    count = 0
    for z in range(top + 1):
        r = tile_range(extent, z)
        for x in range(r["startX"], r["endX"] + 1):
            column = folder / str(z) / str(x)
            column.mkdir(parents=True, exist_ok=True)
            for y in range(r["startY"], r["endY"] + 1):
                (column / f"{y}.terrain").write_bytes(encode_tile(dem, z, x, y))
                count += 1
    served = max(top, SERVED_MAX_LEVEL)
    np.savez(folder / DEM_FILE, heights=dem.heights.astype(np.float32), origin=[dem.west, dem.north, dem.dx, dem.dy],
             href=dem.href, extent=list(extent), built_max_level=top)
    layer = {"tilejson": "2.1.0", "name": "onemap-twin-terrain", "description": f"From {Path(dem.href).name}",
             "version": "1.0.0", "format": "quantized-mesh-1.0", "scheme": "tms", "projection": "EPSG:4326",
             "bounds": [-180.0, -90.0, 180.0, 90.0], "tiles": ["{z}/{x}/{y}.terrain"], "minzoom": 0,
             "maxzoom": served, "available": [[tile_range(extent, z)] for z in range(served + 1)], "attribution": ""}
    (folder / "layer.json").write_text(json.dumps(layer, indent=1), encoding="utf-8")
    return {"tiles": count, "max_level": top, "served_max_level": served}


class DeepLevels:
    """The levels below the built files, cut on request from the DEM the build kept (`dem.npz`)."""

    def __init__(self, dem_file: Path) -> None:
        try:
            with np.load(dem_file) as saved:
                west, north, dx, dy = (float(v) for v in saved["origin"])
                self.dem = Dem(str(saved["href"]), saved["heights"].astype(np.float64), west, north, dx, dy)
                self.extent = tuple(float(v) for v in saved["extent"])
                self.built_max_level = int(saved["built_max_level"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise OnemapError(f"{dem_file}: the DEM kept for the terrain's deep levels cannot be read ({exc}); "
                              "rebuild the twin tiles (Dagster asset twin/tiles)") from exc
        # this instance's own tile cache: a DEM replaced by a rebuild goes with its instance and its tiles
        self.gzipped_tile = lru_cache(maxsize=8192)(self._gzipped_tile)

    def available(self, z: int, x: int, y: int) -> bool:
        if not self.built_max_level < z <= SERVED_MAX_LEVEL:
            return False
        r = tile_range(self.extent, z)
        return r["startX"] <= x <= r["endX"] and r["startY"] <= y <= r["endY"]

    def _gzipped_tile(self, z: int, x: int, y: int) -> bytes:
        tile = encode_tile(self.dem, z, x, y, grid_size(z, self.built_max_level))
        return gzip.compress(tile, compresslevel=6, mtime=0)


@lru_cache(maxsize=2)
def _deep_levels(dem_file: Path, mtime_ns: int) -> DeepLevels:
    return DeepLevels(dem_file)


def deep_tile(folder: Path, z: int, x: int, y: int) -> tuple[bytes, str] | None:
    """A gzipped tile of a level below the built files and a version tag of the DEM it was cut from, or None where
    layer.json does not declare it (or the terrain has no kept DEM). An unreadable kept DEM raises OnemapError."""
    dem_file = folder / DEM_FILE
    try:
        mtime_ns = dem_file.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    levels = _deep_levels(dem_file, mtime_ns)
    if not levels.available(z, x, y):
        return None
    return levels.gzipped_tile(z, x, y), f"{mtime_ns:x}"
