"""PARCEL_OVERLAP on a planted tessellation, held to a brute-force oracle (every intersecting pair intersected,
areas by pyproj's geodesic Geod), on whole-region and one-district audits."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import shapely
from pyproj import Geod

from lake.duckdb_engine import connect
from quality.overlaps import OVERLAP_TOLERANCE_M2, overlap_candidates, parcel_overlaps

GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid differs from GRS80 in the 11th digit of the flattening
WEST, EAST = "500101", "500102"


@pytest.fixture(scope="module")
def planted() -> dict:
    """~600 Voronoi parcels over a 0.05° square, split into two districts at x = 106.025, with planted faults:
    a parcel on the district border grown into its neighbours, a parcel copied small inside another, a sliver
    overlap under the tolerance, and an extra vertex on a shared edge (mismatched edges, no overlap)."""
    rng = np.random.default_rng(7)
    box = shapely.box(106.0, 29.0, 106.05, 29.05)
    cells = shapely.get_parts(shapely.voronoi_polygons(
        shapely.multipoints(rng.uniform((106.0, 29.0), (106.05, 29.05), (600, 2))), extend_to=box))
    cells = shapely.intersection(cells, box)
    cells = cells[shapely.get_type_id(cells) == 3]
    x = shapely.get_x(shapely.centroid(cells))
    border = int(np.argmin(np.abs(x - 106.025)))
    cells[border] = shapely.buffer(cells[border], 2e-5, join_style="mitre")  # ~2 m outwards, across the border
    inner = int(np.argmin(np.abs(x - 106.01)))
    copy = shapely.affinity.scale(cells[inner], 0.3, 0.3)
    sliver = int(np.argmin(np.abs(x - 106.04)))
    cells[sliver] = shapely.buffer(cells[sliver], 1e-9, join_style="mitre")  # ~0.1 mm: far under 1 m²
    mismatched = int(np.argmin(np.abs(x - 106.005)))
    ring = np.asarray(cells[mismatched].exterior.coords)
    cells[mismatched] = shapely.Polygon(np.insert(ring, 1, (ring[0] + ring[1]) / 2, axis=0))
    geoms = np.append(cells, copy)
    x = shapely.get_x(shapely.centroid(geoms))
    ids = [f"P{i:04d}" for i in range(len(geoms))]
    con = connect()
    con.register("arrow_parcels", pa.table({
        "parcel_id": ids, "survey_year": np.full(len(geoms), 2023, np.int32),
        "district_code": np.where(x < 106.025, WEST, EAST), "wkb": shapely.to_wkb(geoms)}))
    con.execute("create table stg_parcels as select parcel_id, survey_year, district_code, "
                "st_geomfromwkb(wkb) as geom from arrow_parcels")
    return {"con": con, "geoms": geoms, "ids": ids, "district": np.where(x < 106.025, WEST, EAST),
            "grown": ids[border], "copy": ids[-1], "inner": ids[inner]}


def _oracle(planted: dict, districts: set[str] | None = None) -> set[frozenset[str]]:
    """Every pair of intersecting parcels intersected; pairs sharing more than the tolerance (geodesic m²)."""
    geoms, ids, district = planted["geoms"], planted["ids"], planted["district"]
    failing = set()
    for i, j in zip(*shapely.STRtree(geoms).query(geoms, predicate="intersects")):
        if i < j and (districts is None or {district[i], district[j]} & districts):
            shared = shapely.intersection(geoms[i], geoms[j])
            if abs(GEOD.geometry_area_perimeter(shared)[0]) > OVERLAP_TOLERANCE_M2:
                failing.add(frozenset((ids[i], ids[j])))
    return failing


def _found(result) -> set[frozenset[str]]:
    return {frozenset(s["parcels"].split(" (")[0].split(" & ")) for s in result.samples}


def test_whole_region_finds_exactly_the_oracles_overlaps(planted: dict) -> None:
    expected = _oracle(planted)
    assert frozenset((planted["copy"], planted["inner"])) in expected
    assert sum(planted["grown"] in pair for pair in expected) >= 3
    result = parcel_overlaps(planted["con"])
    assert result.failing == len(expected) and _found(result) == expected


def test_district_audit_finds_the_overlaps_touching_its_parcels(planted: dict) -> None:
    for district in (WEST, EAST):
        expected = _oracle(planted, {district})
        result = parcel_overlaps(planted["con"], [district])
        assert result.failing == len(expected) and _found(result) == expected
    grown_district = planted["district"][planted["ids"].index(planted["grown"])]
    other = EAST if grown_district == WEST else WEST
    assert any(planted["grown"] in pair for pair in _found(parcel_overlaps(planted["con"], [other]))), \
        "an overlap reaching across the border must show on the neighbouring district's audit too"


def test_candidates_do_not_depend_on_the_number_of_slices(planted: dict) -> None:
    geoms = planted["geoms"]
    everything = np.ones(len(geoms), dtype=bool)
    one = overlap_candidates(geoms, everything, workers=1)
    for workers in (2, 5):
        assert all(np.array_equal(a, b) for a, b in zip(one, overlap_candidates(geoms, everything, workers=workers)))
    assert overlap_candidates(geoms[:0], everything[:0])[0].size == 0
