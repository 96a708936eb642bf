"""The page's first view, defined once here: its camera target (the page reads it from /viewer/defaults.json), its
map layer (all of STACK composited, parcels of the latest survey year) and the tiles it asks for, which warm()
renders into the tile caches ahead of the first page (same code, same cache keys as a request).

Which tiles: measured in headless Chromium at 1280×800 (benchmarks/viewer_bench.py), the first view asks one
z1 tile and 26 tiles at z16/z17 within VIEW_RADIUS tiles of the target's tile. So: every tile meeting the
region's parcels up to REGION_MAX_ZOOM (the zoomed-out globe; parcels there come from the index's overview
raster, cheap) plus the (2·VIEW_RADIUS+1)² tiles around the target at VIEW_ZOOMS.
"""

from __future__ import annotations

import time

from twin_viewer.maptiles import overlays
from twin_viewer.maptiles.composite import STACK, map_tile
from twin_viewer.maptiles.lakestate import LakeState, current_state, survey_years
from twin_viewer.maptiles.tilemath import lonlat_to_tile, tiles_covering

# 渝中 from the south-west, looking at where the demo's BIM/CIM models stand (range in metres, angles in degrees)
TARGET = {"lon": 106.5699, "lat": 29.5596, "range": 650, "heading": 20, "pitch": -50}
REGION_MAX_ZOOM = 6  # the first view asks z1 only; z ≤ 6 is 21 tiles here (≈2 s)
VIEW_ZOOMS = (16, 17)
VIEW_RADIUS = 3  # measured: x −1..+2, y −2..+2 around the target at z16 (49 tiles per zoom, ≈4.5 s)


def default_year(state: LakeState) -> int | None:
    """The survey year the page opens on: the latest (the page takes the manifest's last survey year); None before
    any parcels were loaded."""
    years = survey_years(state)
    return years[-1] if years else None


def default_tiles(state: LakeState) -> list[tuple[int, int, int]]:
    """The (z, x, y) the first view asks for: the region's overview zooms and the block around the target."""
    extent = overlays.source("parcels", None, state).index(state).extent
    tiles = [t for z in range(REGION_MAX_ZOOM + 1) for t in tiles_covering(extent, z)] if extent else []
    for z in VIEW_ZOOMS:
        cx, cy = lonlat_to_tile(TARGET["lon"], TARGET["lat"], z)
        tiles += [(z, x, y) for x in range(cx - VIEW_RADIUS, cx + VIEW_RADIUS + 1)
                  for y in range(cy - VIEW_RADIUS, cy + VIEW_RADIUS + 1)]
    return tiles


def prerender() -> dict:
    """Render the default view's composited tiles into the cache; returns the tile count and seconds taken."""
    t = time.perf_counter()
    state = current_state()
    year = default_year(state)
    if year is None:
        return {"tiles": 0, "seconds": time.perf_counter() - t}
    tiles = default_tiles(state)
    for z, x, y in tiles:
        map_tile(STACK, z, x, y, year=year)
    return {"tiles": len(tiles), "seconds": time.perf_counter() - t}


def warm() -> dict:
    """Everything the first page needs from the map tiles, ahead of it (server start, after a publish): the overlay
    indexes, then the default view's tiles. Returns prerender()'s figures."""
    overlays.warm()
    return prerender()
