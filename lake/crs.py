"""Coordinate reference systems: resolve what a feed declares and bring geometries to CGCS2000 lon/lat.

Accepted: any CRS pyproj knows (EPSG codes, WKT from a .prj, PROJ strings), the CGCS2000 Gauss–Krüger zones
(EPSG:4534–4554 by central meridian, 4513–4533 zone-numbered), WGS84, and GCJ-02 (the offset datum of Chinese web
maps), which pyproj does not know and is inverted here. An unknown CRS is an error, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyproj
import shapely

from lake.errors import OnemapError

TARGET_EPSG = 4490  # CGCS2000 geographic
GCJ02_NAMES = {"GCJ-02", "GCJ02", "GCJ_02"}

# CGCS2000 ellipsoid (numerically the GRS80 ellipsoid).
CGCS2000_A = 6378137.0
CGCS2000_RF = 298.257222101


@dataclass(frozen=True)
class SourceCrs:
    """A resolved source CRS: either a pyproj CRS or the GCJ-02 marker."""

    label: str
    crs: pyproj.CRS | None  # None means GCJ-02

    @property
    def is_gcj02(self) -> bool:
        return self.crs is None


def resolve_crs(declared: str | int | None) -> SourceCrs:
    """Resolve a declared CRS (EPSG code, 'EPSG:4545', WKT, PROJ string or 'GCJ-02')."""
    if declared is None or (isinstance(declared, str) and not declared.strip()):
        raise OnemapError("no CRS: the file carries none and its feed contract declares none; add `crs:` to the contract")
    if isinstance(declared, str) and declared.strip().upper() in GCJ02_NAMES:
        return SourceCrs("GCJ-02", None)
    return _pyproj_crs(str(declared))


@lru_cache(maxsize=64)
def _pyproj_crs(declared: str) -> SourceCrs:
    text = declared.strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        crs = pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as exc:
        raise OnemapError(f"unknown CRS {declared[:80]!r}: {exc}; declare an EPSG code in the feed contract") from exc
    epsg = crs.to_epsg(min_confidence=70)
    label = f"EPSG:{epsg}" if epsg else crs.name
    return SourceCrs(label, crs)


@lru_cache(maxsize=64)
def _transformer_to_cgcs2000(crs_wkt: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(crs_wkt), TARGET_EPSG, always_xy=True)


def coordinate_transform(source: SourceCrs) -> Callable[[np.ndarray], np.ndarray] | None:
    """(n, 2) source x, y → (n, 2) CGCS2000 lon, lat; None when the source already is CGCS2000."""
    if source.is_gcj02:
        return _gcj02_coords_to_wgs84
    assert source.crs is not None
    if source.crs.to_epsg() == TARGET_EPSG:
        return None
    transformer = _transformer_to_cgcs2000(source.crs.to_wkt())

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return project


def to_cgcs2000(geoms: np.ndarray, source: SourceCrs) -> np.ndarray:
    """Transform an array of shapely geometries to CGCS2000 lon/lat (2D), vectorised over all coordinates."""
    project = coordinate_transform(source)
    if source.is_gcj02:
        return shapely.transform(geoms, project)
    if shapely.has_z(geoms).any():
        geoms = shapely.force_2d(geoms)
    return geoms if project is None else shapely.transform(geoms, project)


# --- GCJ-02 --------------------------------------------------------------------------------------------------
# The published forward obfuscation (Krasovsky constants); WGS84 and CGCS2000 agree to centimetres, well inside
# the ~1 m the iterative inverse achieves.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323


def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 105.0, lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    rad = lat / 180.0 * np.pi
    magic = 1.0 - _GCJ_EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward GCJ-02 offset (what Chinese web maps publish)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _gcj_delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: np.ndarray, lat: np.ndarray, iterations: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Invert the GCJ-02 offset by fixed-point iteration (converges to well under 1 m in 3–4 steps)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    w_lon, w_lat = lon.copy(), lat.copy()
    for _ in range(iterations):
        g_lon, g_lat = wgs84_to_gcj02(w_lon, w_lat)
        w_lon -= g_lon - lon
        w_lat -= g_lat - lat
    return w_lon, w_lat


def _gcj02_coords_to_wgs84(coords: np.ndarray) -> np.ndarray:
    lon, lat = gcj02_to_wgs84(coords[:, 0], coords[:, 1])
    return np.column_stack([lon, lat])
