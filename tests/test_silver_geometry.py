"""The WKB fast path for one-ring polygons writes exactly what the GEOS path writes, and leaves the rest to GEOS."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyproj
import shapely

from lake.area import ellipsoidal_area_m2
from lake.crs import resolve_crs, to_cgcs2000
from lake.silver_geometry import to_silver_geometry
from lake.wkb_polygons import SingleRingPolygons


def _deliveries() -> tuple[np.ndarray, np.ndarray]:
    """GK zone 36 (EPSG:4545) geometries of every kind a survey delivery holds, as WKB and as shapely."""
    rng = np.random.default_rng(3)
    centres = np.column_stack([rng.uniform(420_000, 580_000, 60), rng.uniform(3_200_000, 3_400_000, 60)])
    simple = shapely.buffer(shapely.points(centres), rng.uniform(20, 400, 60), quad_segs=3)
    holed = shapely.difference(simple[:5], shapely.buffer(shapely.points(centres[:5]), 10))
    multi = shapely.MultiPolygon([simple[5], shapely.box(*(centres[5] + 1000), *(centres[5] + 1100))])
    three_d = shapely.force_3d(simple[6], 250.0)
    geoms = np.array([*simple[7:], *holed, multi, three_d, None, shapely.Point(*centres[8])], dtype=object)
    wkb = np.array([None if g is None else shapely.to_wkb(g) for g in geoms], dtype=object)
    wkb[0] = shapely.to_wkb(geoms[0], byte_order=0)  # big-endian WKB: valid, left to GEOS
    return wkb, geoms


def test_fast_path_matches_geos_byte_for_byte() -> None:
    wkb, geoms = _deliveries()
    usable = np.array([g is not None for g in geoms])
    repaired = np.zeros(len(geoms), dtype=bool)
    repaired[1] = True  # a repaired row must come from its repaired geometry, not from the delivered bytes
    crs = resolve_crs("EPSG:4545")
    silver = to_silver_geometry(wkb, geoms, usable, repaired, crs)

    expected = np.full(len(geoms), None, dtype=object)
    expected[usable] = to_cgcs2000(geoms[usable], crs)
    assert silver.wkb.to_pylist() == [None if g is None else shapely.to_wkb(g, output_dimension=2) for g in expected]
    np.testing.assert_array_equal(silver.bounds, shapely.bounds(expected))
    np.testing.assert_allclose(silver.area_m2, ellipsoidal_area_m2(expected), rtol=1e-12)
    assert silver.area_m2[-1] == 0.0 and np.isnan(silver.area_m2[-2])


def test_only_little_endian_2d_one_ring_polygons_take_the_fast_path() -> None:
    wkb, geoms = _deliveries()
    fast = SingleRingPolygons.scan(pa.array(wkb, pa.large_binary()), np.ones(len(wkb), dtype=bool))
    kinds = [None if g is None else (shapely.get_type_id(g), shapely.get_num_interior_rings(g), shapely.has_z(g))
             for g in geoms]
    expected = [k == (3, 0, False) for k in kinds]
    expected[0] = False  # big-endian
    assert fast.rows.tolist() == expected
    projected = pyproj.Transformer.from_crs(4545, 4490, always_xy=True)
    lon, lat = projected.transform(*fast.coordinates().T)
    assert (105 < lon).all() and (lon < 111).all() and (28 < lat).all() and (lat < 32).all()
