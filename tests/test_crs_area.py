"""CRS handling and ellipsoidal area against independent references (pyproj Geod, Gauss–Krüger areas)."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import shapely

from lake.area import ellipsoidal_area_m2
from lake.crs import gcj02_to_wgs84, resolve_crs, to_cgcs2000, wgs84_to_gcj02
from lake.errors import OnemapError

GEOD = pyproj.Geod(a=6378137.0, rf=298.257222101)


def test_gcj02_inverse_round_trips_within_a_metre() -> None:
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(105.3, 110.2, 500), rng.uniform(28.2, 32.2, 500)
    glon, glat = wgs84_to_gcj02(lon, lat)
    # the offset is hundreds of metres, so the test would notice a missing conversion
    assert np.min(GEOD.inv(lon, lat, glon, glat)[2]) > 100
    back_lon, back_lat = gcj02_to_wgs84(glon, glat)
    assert np.max(GEOD.inv(lon, lat, back_lon, back_lat)[2]) < 1.0


def test_gcj02_declared_geometries_are_converted() -> None:
    point = shapely.Point(wgs84_to_gcj02(np.array([106.5]), np.array([29.5]))[0][0],
                          wgs84_to_gcj02(np.array([106.5]), np.array([29.5]))[1][0])
    out = to_cgcs2000(np.array([point]), resolve_crs("GCJ-02"))[0]
    assert GEOD.inv(106.5, 29.5, out.x, out.y)[2] < 1.0


@pytest.mark.parametrize("declared, central_meridian", [("EPSG:4544", 105), ("EPSG:4545", 108), ("4546", 111),
                                                         ("EPSG:4524", 108)])
def test_gauss_kruger_zones(declared: str, central_meridian: int) -> None:
    easting = 500000 + (36_000_000 if declared == "EPSG:4524" else 0)  # zone-numbered false easting
    out = to_cgcs2000(np.array([shapely.Point(easting, 3_300_000)]), resolve_crs(declared))[0]
    assert out.x == pytest.approx(central_meridian, abs=1e-9)
    assert 29.7 < out.y < 29.9


def test_unknown_or_missing_crs_is_rejected() -> None:
    with pytest.raises(OnemapError, match="unknown CRS"):
        resolve_crs("EPSG:999999")
    with pytest.raises(OnemapError, match="no CRS"):
        resolve_crs(None)


def test_ellipsoidal_area_matches_geodesic_reference() -> None:
    rng = np.random.default_rng(7)
    centres = np.column_stack([rng.uniform(105.5, 110, 200), rng.uniform(28.5, 32, 200)])
    polys = shapely.buffer(shapely.points(centres), rng.uniform(0.001, 0.05, 200), quad_segs=8)
    ours = ellipsoidal_area_m2(polys)
    reference = np.array([abs(GEOD.geometry_area_perimeter(p)[0]) for p in polys])
    assert np.max(np.abs(ours / reference - 1)) < 1e-6


def test_ellipsoidal_area_of_holes_multipolygons_and_other_types() -> None:
    shell = shapely.box(106.50, 29.50, 106.52, 29.52)
    hole = shapely.box(106.505, 29.505, 106.51, 29.51)
    with_hole = shapely.Polygon(shell.exterior.coords, [hole.exterior.coords])
    second = shapely.box(106.60, 29.60, 106.61, 29.61)
    multi = shapely.MultiPolygon([with_hole, second])
    mixed = np.array([shell, with_hole, None, multi, shapely.Point(106.5, 29.5), second], dtype=object)
    ours = ellipsoidal_area_m2(mixed)

    def geodesic(g: shapely.Geometry) -> float:
        return abs(GEOD.geometry_area_perimeter(g)[0])

    expected = [geodesic(shell), geodesic(shell) - geodesic(hole), np.nan,
                geodesic(shell) - geodesic(hole) + geodesic(second), 0.0, geodesic(second)]
    assert np.isnan(ours[2])
    np.testing.assert_allclose(np.delete(ours, 2), np.delete(np.array(expected), 2), rtol=1e-6)


def test_gauss_kruger_area_agrees_within_a_tenth_of_a_percent() -> None:
    parcel = shapely.box(107.9, 29.5, 107.92, 29.52)
    to_gk = pyproj.Transformer.from_crs(4490, 4545, always_xy=True)
    projected = shapely.transform(parcel, lambda c: np.column_stack(to_gk.transform(c[:, 0], c[:, 1])))
    ratio = projected.area / ellipsoidal_area_m2(np.array([parcel]))[0]
    assert abs(ratio - 1) < 1e-3
