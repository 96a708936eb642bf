"""The region's DEM: found in the STAC catalog (silver stac_items/stac_assets), read whole, sampled bilinearly.

Buildings stand on it and the terrain tiles are cut from it, so both use `Dem.sample`: a building's base is the
terrain height under it. A missing, unreadable or corrupt DEM is not an error of the build: the twin falls back to
the ellipsoid (height 0) and says why in a warning that names the file.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass

import numpy as np
from rasterio.crs import CRS

from lake import delta_io
from lake.errors import OnemapError
from lake.rasters import read_raster, verify_raster
from lake.registry import STAC_ASSETS, STAC_ITEMS

log = logging.getLogger(__name__)
MAX_DEM_PIXELS = 4096 * 4096  # a larger DEM is read from its overviews at this size (about 130 MB of float64)
_DEM_WORDS = re.compile(r"(?<![a-z])(dem|dtm|dsm|elevation|height|terrain)(?![a-z])", re.IGNORECASE)


@dataclass(frozen=True)
class Dem:
    """Heights (rows north to south) on a regular lon/lat grid of pixel size (dx, dy) from (west, north)."""

    href: str
    heights: np.ndarray  # float64, missing values already 0
    west: float
    north: float
    dx: float
    dy: float

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        rows, cols = self.heights.shape
        return self.west, self.north - rows * self.dy, self.west + cols * self.dx, self.north

    @property
    def resolution_deg(self) -> float:
        return min(self.dx, self.dy)

    def sample(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Bilinear heights between pixel centres (edge pixels extend to the raster's border); 0 outside it."""
        lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        rows, cols = self.heights.shape
        x = np.clip((lon - self.west) / self.dx - 0.5, 0.0, cols - 1.0)
        y = np.clip((self.north - lat) / self.dy - 0.5, 0.0, rows - 1.0)
        x0 = np.minimum(np.floor(x).astype(np.int64), max(cols - 2, 0))
        y0 = np.minimum(np.floor(y).astype(np.int64), max(rows - 2, 0))
        x1, y1 = np.minimum(x0 + 1, cols - 1), np.minimum(y0 + 1, rows - 1)
        fx, fy = x - x0, y - y0
        h = self.heights
        top = h[y0, x0] * (1 - fx) + h[y0, x1] * fx
        bottom = h[y1, x0] * (1 - fx) + h[y1, x1] * fx
        value = top * (1 - fy) + bottom * fy
        west, south, east, north = self.bounds
        inside = (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
        return np.where(inside, value, 0.0)


@dataclass(frozen=True)
class DemLookup:
    dem: Dem | None
    warning: str | None  # why there is no DEM (None when there is one)


def find_dem_href() -> str | None:
    """The data asset of the latest DEM item: an item whose collection, id, asset key or title says dem/elevation."""
    assets = delta_io.read_table(STAC_ASSETS, columns=["collection", "item_id", "asset_key", "href", "media_type",
                                                       "roles", "title"]).to_pylist()
    items = delta_io.read_table(STAC_ITEMS, columns=["collection", "item_id", "datetime", "gsd"]).to_pylist()
    when = {(i["collection"], i["item_id"]): (i["datetime"] is not None, i["datetime"], -(i["gsd"] or 0))
            for i in items}
    candidates = []
    for a in assets:
        text = " ".join(str(a[k] or "") for k in ("collection", "item_id", "asset_key", "title"))
        roles = json.loads(a["roles"]) if a["roles"] else []
        is_raster = "tif" in (a["media_type"] or "").lower() or str(a["href"]).lower().endswith((".tif", ".tiff"))
        if is_raster and _DEM_WORDS.search(text) and not set(roles) & {"thumbnail", "overview", "metadata"}:
            candidates.append((when.get((a["collection"], a["item_id"]), (False, None, 0)), a["href"]))
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c[0][0], c[0][1] or 0, c[0][2]))[1]


def load_dem() -> DemLookup:
    """The DEM, or None with the reason (logged as a warning): nothing in the catalog, unreadable, corrupt, not
    geographic."""
    href = find_dem_href()
    if href is None:
        return _without("no DEM in the STAC catalog (silver/stac_assets has no GeoTIFF asset of an item whose "
                        "collection, id or title names a DEM or elevation); terrain is the ellipsoid")
    try:
        info = verify_raster(href)  # decodes every block: a corrupt tile shows here, not half-way through tiling
        crs = CRS.from_user_input(info.crs) if info.crs else None
        if crs is None or not crs.is_geographic:
            return _without(f"{href}: DEM CRS {info.crs or 'missing'} is not geographic (lon/lat); reproject it to "
                            "EPSG:4490; terrain is the ellipsoid")
        shrink = math.sqrt(info.width * info.height / MAX_DEM_PIXELS)
        size = (max(1, int(info.height / shrink)), max(1, int(info.width / shrink))) if shrink > 1 else None
        pixels = read_raster(href, bands=[1], out_size=size)[0]
    except OnemapError as exc:
        return _without(f"{exc}; terrain is the ellipsoid")
    west, south, east, north = info.bounds
    heights = np.ma.filled(pixels.astype(np.float64), 0.0)
    heights[~np.isfinite(heights)] = 0.0
    rows, cols = heights.shape
    return DemLookup(Dem(href, heights, west, north, (east - west) / cols, (north - south) / rows), None)


def _without(warning: str) -> DemLookup:
    log.warning("twin terrain: %s", warning)
    return DemLookup(None, warning)
