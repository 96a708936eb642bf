"""Ellipsoidal area on the CGCS2000 ellipsoid, vectorised.

The national land survey defines a parcel's area (图斑面积) on the ellipsoid. We project to a Lambert azimuthal
equal-area projection on the CGCS2000 ellipsoid centred on the batch (exactly area-preserving) and take planar
areas with shapely; tests hold this to pyproj's geodesic `Geod` within 1e-6 relative. A per-polygon geodesic loop
would be two orders of magnitude slower at a million parcels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyproj
import shapely

from lake.crs import CGCS2000_A, CGCS2000_RF


@lru_cache(maxsize=32)
def _equal_area_transformer(lon0: float, lat0: float) -> pyproj.Transformer:
    laea = f"+proj=laea +lat_0={lat0} +lon_0={lon0} +a={CGCS2000_A} +rf={CGCS2000_RF} +units=m +no_defs"
    return pyproj.Transformer.from_crs("EPSG:4490", laea, always_xy=True)


def ellipsoidal_area_m2(geoms: np.ndarray) -> np.ndarray:
    """Area in m² of CGCS2000 lon/lat geometries (NaN for missing ones)."""
    geoms = np.asarray(geoms, dtype=object)
    present = ~shapely.is_missing(geoms)
    out = np.full(len(geoms), np.nan)
    if not present.any():
        return out
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms[present])
    # Round the centre so batches of one region share a cached transformer.
    transformer = _equal_area_transformer(round((xmin + xmax) / 2, 1), round((ymin + ymax) / 2, 1))

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    out[present] = shapely.area(shapely.transform(geoms[present], project))
    return out
