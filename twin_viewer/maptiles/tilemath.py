"""Web-Mercator (EPSG:3857) XYZ tile arithmetic and the projection of lake geometries onto it.

The lake stores CGCS2000 (EPSG:4490) longitudes/latitudes. CGCS2000 and WGS84 differ by a few centimetres, far
below a map pixel, so the twin treats lake coordinates as WGS84 (what Cesium and Web-Mercator tiles expect) and
hands them to the page unchanged.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pyproj
import shapely

from twin_viewer.maptiles.errors import TileAddressError

TILE_SIZE = 256
MAX_ZOOM = 22
HALF_WORLD = 20037508.342789244  # metres from the origin to the edge of the Web-Mercator square
MAX_LAT = 85.0511287798066


def check_tile(z: int, x: int, y: int) -> None:
    """Raise TileAddressError unless (z, x, y) addresses an existing XYZ tile."""
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (z, x, y)):
        raise TileAddressError(f"tile {z}/{x}/{y}: z, x and y must be integers")
    if not 0 <= z <= MAX_ZOOM:
        raise TileAddressError(f"tile {z}/{x}/{y}: zoom must lie in 0..{MAX_ZOOM}")
    if not (0 <= x < 2 ** z and 0 <= y < 2 ** z):
        raise TileAddressError(f"tile {z}/{x}/{y}: x and y must lie in 0..{2 ** z - 1} at zoom {z}")


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of the tile in Web-Mercator metres (XYZ: y counts down from the north)."""
    size = 2 * HALF_WORLD / 2 ** z
    return (-HALF_WORLD + x * size, HALF_WORLD - (y + 1) * size, -HALF_WORLD + (x + 1) * size, HALF_WORLD - y * size)


def pixel_size(z: int) -> float:
    return 2 * HALF_WORLD / (TILE_SIZE * 2 ** z)


def tile_lonlat_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    n = 2 ** z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def mercator_xy(lon: np.ndarray | float, lat: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Spherical Mercator of lon/lat degrees (latitudes clamped to the square's ±85.05°)."""
    lon, lat = np.asarray(lon, dtype=float), np.clip(np.asarray(lat, dtype=float), -MAX_LAT, MAX_LAT)
    return _transformer().transform(lon, lat)


@cache
def _transformer() -> pyproj.Transformer:
    return pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)


def to_mercator(geoms: np.ndarray) -> np.ndarray:
    """Geometries in lon/lat → the same geometries in Web-Mercator metres (vertex by vertex)."""
    return shapely.transform(geoms, lambda xy: np.column_stack(mercator_xy(xy[:, 0], xy[:, 1])))


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    x, y = mercator_xy(lon, lat)
    size = 2 * HALF_WORLD / 2 ** z
    n = 2 ** z
    return (min(n - 1, int((float(x) + HALF_WORLD) // size)), min(n - 1, int((HALF_WORLD - float(y)) // size)))


def tiles_covering(extent: tuple[float, float, float, float], z: int) -> list[tuple[int, int, int]]:
    """Every XYZ tile of zoom z that meets `extent` (xmin, ymin, xmax, ymax in Web-Mercator metres)."""
    size, n = 2 * HALF_WORLD / 2 ** z, 2 ** z

    def clamp(v: float) -> int:
        return min(n - 1, max(0, int(v // size)))

    x0, x1 = clamp(extent[0] + HALF_WORLD), clamp(extent[2] + HALF_WORLD)
    y0, y1 = clamp(HALF_WORLD - extent[3]), clamp(HALF_WORLD - extent[1])
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
