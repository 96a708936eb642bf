"""Delivered geometries brought to silver: CGCS2000 lon/lat WKB, bounding boxes and ellipsoidal areas per row.

One-ring polygons (nearly every survey parcel) go straight from WKB bytes through the projection and back
(`lake.wkb_polygons`); the rest — holes, multipolygons, points, repaired rows — through GEOS. Both paths write
the same bytes; shapely objects of the result are made only when a contract needs them (spatial assignment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from lake.area import ellipsoidal_area_m2, ring_areas_m2
from lake.crs import SourceCrs, coordinate_transform, to_cgcs2000
from lake.wkb_polygons import SingleRingPolygons


@dataclass(frozen=True)
class SilverGeometry:
    wkb: pa.BinaryArray  # null where the row's geometry is not usable
    bounds: np.ndarray  # (n, 4) xmin, ymin, xmax, ymax; NaN where not usable
    area_m2: np.ndarray  # NaN where not usable; 0 for non-polygonal geometries

    def shapely(self) -> np.ndarray:
        return shapely.from_wkb(self.wkb.to_numpy(zero_copy_only=False))


def to_silver_geometry(source_wkb: np.ndarray, source_geoms: np.ndarray, usable: np.ndarray, repaired: np.ndarray,
                       crs: SourceCrs) -> SilverGeometry:
    """Reproject the usable rows; `source_geoms` are the parsed (and, where `repaired`, repaired) deliveries."""
    n = len(source_geoms)
    fast = SingleRingPolygons.scan(pa.array(source_wkb, pa.large_binary()), usable & ~repaired)
    coords = fast.coordinates()
    project = coordinate_transform(crs)
    if project is not None and len(coords):
        coords = project(coords)
    slow = usable & ~fast.rows
    geoms = to_cgcs2000(source_geoms[slow], crs)
    bounds, area = np.full((n, 4), np.nan), np.full(n, np.nan)
    bounds[fast.rows], bounds[slow] = fast.bounds(coords), shapely.bounds(geoms)
    area[fast.rows] = ring_areas_m2(coords, fast.ring_of_coordinate, int(fast.rows.sum()))
    area[slow] = ellipsoidal_area_m2(geoms)
    others = ~fast.rows
    replacements = np.full(int(others.sum()), None, dtype=object)
    replacements[slow[others]] = shapely.to_wkb(geoms, output_dimension=2)
    wkb = pc.replace_with_mask(fast.with_coordinates(coords), pa.array(others),
                               pa.array(replacements, pa.large_binary()))
    return SilverGeometry(wkb.cast(pa.binary()), bounds, area)
