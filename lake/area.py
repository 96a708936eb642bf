"""Ellipsoidal area on the CGCS2000 ellipsoid, vectorised over all rings at once.

The national land survey defines a parcel's area (图斑面积) on the ellipsoid. We map lon/lat to Lambert's
cylindrical equal-area projection on the CGCS2000 ellipsoid (authalic latitude in closed form, so exactly
area-preserving) and take shoelace areas of every ring with numpy — no per-polygon loop and no second pass
through PROJ, which matters at a million parcels. Tests hold it to pyproj's geodesic `Geod` within 1e-6 relative
for parcel- and district-sized polygons.
"""

from __future__ import annotations

import numpy as np
import shapely

from lake.crs import CGCS2000_A, CGCS2000_RF

_F = 1.0 / CGCS2000_RF
_E2 = _F * (2.0 - _F)
_E = np.sqrt(_E2)


def _authalic_q(lat_deg: np.ndarray) -> np.ndarray:
    """q(φ) of the ellipsoid; a cylindrical equal-area projection has y = a·q/2."""
    s = np.sin(np.radians(lat_deg))
    return (1.0 - _E2) * (s / (1.0 - _E2 * s * s) - np.log((1.0 - _E * s) / (1.0 + _E * s)) / (2.0 * _E))


def ring_areas_m2(coords: np.ndarray, ring_of_coord: np.ndarray, rings: int) -> np.ndarray:
    """Ellipsoidal area (m²) of each ring, from CGCS2000 lon/lat coordinates listed ring after ring."""
    x = np.radians(coords[:, 0]) * CGCS2000_A
    y = _authalic_q(coords[:, 1]) * CGCS2000_A / 2.0
    # sum of x_i*y_{i+1} - x_{i+1}*y_i over consecutive vertices of the same ring
    same_ring = ring_of_coord[1:] == ring_of_coord[:-1]
    cross = (x[:-1] * y[1:] - x[1:] * y[:-1]) * same_ring
    return np.abs(np.bincount(ring_of_coord[:-1], weights=cross, minlength=rings)) / 2.0


def _polygonal_area_m2(geoms: np.ndarray) -> np.ndarray:
    """Area of each geometry's polygonal parts: shells minus holes (the first ring of each polygon is its shell)."""
    parts, part_owner = shapely.get_parts(geoms, return_index=True)
    polygonal = shapely.get_type_id(parts) == 3
    parts, part_owner = parts[polygonal], part_owner[polygonal]
    if len(parts) == 0:
        return np.zeros(len(geoms))
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of_coord = shapely.get_coordinates(rings, return_index=True)
    ring_area = ring_areas_m2(coords, ring_of_coord, len(rings))
    is_shell = np.r_[True, ring_part[1:] != ring_part[:-1]]
    part_area = np.bincount(ring_part, weights=np.where(is_shell, ring_area, -ring_area), minlength=len(parts))
    return np.bincount(part_owner, weights=part_area, minlength=len(geoms))


def ellipsoidal_area_m2(geoms: np.ndarray) -> np.ndarray:
    """Area in m² of CGCS2000 lon/lat (multi)polygons; NaN for missing geometries, 0 for other types.

    Most survey parcels are polygons without holes: their coordinates are one ring each, read in one pass. Only
    the rest (holes, multipolygons, other types) are split into parts and rings, which costs a geometry object
    per ring.
    """
    geoms = np.asarray(geoms, dtype=object)
    out = np.full(len(geoms), np.nan)
    present = np.flatnonzero(~shapely.is_missing(geoms))
    kind = shapely.get_type_id(geoms[present])
    single_ring = (kind == 3) & (shapely.get_num_interior_rings(geoms[present]) == 0)
    simple = present[single_ring]
    coords, owner = shapely.get_coordinates(geoms[simple], return_index=True)
    out[simple] = ring_areas_m2(coords, owner, len(simple))
    rest = present[~single_ring]
    if len(rest):
        out[rest] = _polygonal_area_m2(geoms[rest])
    return out
