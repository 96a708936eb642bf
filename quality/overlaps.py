"""PARCEL_OVERLAP: parcels of one survey year must not share area beyond a tolerance.

Runs in shapely on geometries read from DuckDB: measured on 20k parcels, DuckDB 1.5.5 spatial took over 200 s
for the pairwise ST_Intersection/ST_Overlaps of neighbours (about 3 ms per pair). Intersecting every pair of
touching parcels in shapely is still 60 µs a pair, 73 s for 923k parcels (2.7M neighbour pairs), so a coverage
check comes first: GEOS's coverage validator flags each parcel whose interior meets another's (or whose shared
edges do not match vertex for vertex), about 17 µs a parcel. Only flagged parcels are intersected with their
neighbours, and the overlap area (ellipsoidal, lake.area) decides. On an incremental build only the rebuilt
districts' parcels and their neighbours are read.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import shapely

from lake.area import ellipsoidal_area_m2
from quality.catalog import rules
from quality.results import RuleResult
from quality.spatial_rules import in_districts

OVERLAP_TOLERANCE_M2 = 1.0
_DEG2_PER_M2 = 1e-10  # a planar pre-filter: 1 m² is about 1e-10 deg² at these latitudes, so 1e-11 keeps everything


def _parcels_near_rebuilt(con: duckdb.DuckDBPyConnection, year: int,
                          districts: list[str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids, rebuilt flags and geometries of one year's parcels whose bounding box meets the rebuilt parcels' extent
    (every parcel on a whole-region build)."""
    table = con.sql(f"""
        with parcels as (select parcel_id, {in_districts('district_code', districts)} as rebuilt, geom from stg_parcels
                         where survey_year = {year}),
        extent as (select min(st_xmin(geom)) as x0, min(st_ymin(geom)) as y0, max(st_xmax(geom)) as x1,
                          max(st_ymax(geom)) as y1 from parcels where rebuilt)
        select parcel_id, rebuilt, st_aswkb(geom) as wkb from parcels, extent
        where st_xmax(geom) >= x0 and st_xmin(geom) <= x1 and st_ymax(geom) >= y0 and st_ymin(geom) <= y1
        """).to_arrow_table()
    return (table.column("parcel_id").to_numpy(zero_copy_only=False),
            table.column("rebuilt").to_numpy(zero_copy_only=False),
            shapely.from_wkb(table.column("wkb").to_numpy(zero_copy_only=False)))


def _flagged_by_coverage(tree: shapely.STRtree, geoms: np.ndarray, own: np.ndarray) -> np.ndarray:
    """The parcels of `own` (indices) that the coverage validator flags, checked against all their neighbours."""
    near = np.unique(np.concatenate([own, tree.query(geoms[own])[1]]))
    invalid_edges = shapely.coverage_invalid_edges(geoms[near])
    flagged = near[~(shapely.is_empty(invalid_edges) | shapely.is_missing(invalid_edges))]
    return np.intersect1d(flagged, own)


def overlap_candidates(geoms: np.ndarray, rebuilt: np.ndarray, workers: int | None = None) -> tuple[np.ndarray,
                                                                                                    np.ndarray]:
    """Index pairs (i < j) of parcels that may share area, at least one of them rebuilt.

    Any two parcels whose interiors meet are both flagged by the coverage validator, so pairing each flagged
    rebuilt parcel with the parcels it intersects finds every overlap. The check runs in west-to-east slices
    on threads (GEOS releases the GIL); each slice sees all its parcels' neighbours.
    """
    tree = shapely.STRtree(geoms)
    own = np.flatnonzero(rebuilt)
    own = own[np.argsort(shapely.bounds(geoms[own])[:, 0], kind="stable")]
    slices = [s for s in np.array_split(own, workers or os.cpu_count() or 1) if len(s)]
    with ThreadPoolExecutor(max(len(slices), 1)) as pool:
        flagged = np.concatenate([np.empty(0, np.intp),
                                  *pool.map(lambda s: _flagged_by_coverage(tree, geoms, s), slices)])
    k, j = tree.query(geoms[flagged], predicate="intersects")
    i = flagged[k]
    pairs = np.unique(np.sort(np.column_stack([i, j])[i != j], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def parcel_overlaps(con: duckdb.DuckDBPyConnection, districts: list[str] | None = None) -> RuleResult:
    """Pairs of overlapping parcels per survey year; on an incremental build, pairs touching rebuilt districts."""
    failing: list[tuple[str, str, int, float, tuple[float, float]]] = []
    years = [r[0] for r in con.sql("select distinct survey_year from stg_parcels order by 1").fetchall()]
    for year in years:
        ids, rebuilt, geoms = _parcels_near_rebuilt(con, year, districts)
        i, j = overlap_candidates(geoms, rebuilt)
        shared = shapely.intersection(geoms[i], geoms[j])
        candidate = shapely.area(shared) > 0.1 * _DEG2_PER_M2 * OVERLAP_TOLERANCE_M2
        area = ellipsoidal_area_m2(shared[candidate])
        for a, b, s, m2 in zip(ids[i[candidate]], ids[j[candidate]], shared[candidate], area):
            if m2 > OVERLAP_TOLERANCE_M2:
                p = shapely.point_on_surface(s)
                failing.append((a, b, year, m2, (p.x, p.y)))
    samples = [{"parcels": f"{a} & {b} ({y})", "detail": f"overlap {m2:.1f} m²"} for a, b, y, m2, _ in failing[:20]]
    return RuleResult(rules()["PARCEL_OVERLAP"], len(failing), samples, [f[4] for f in failing[:2000]])
