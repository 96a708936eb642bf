"""Buildings as one triangle soup in the twin's root frame: silver meshes placed on the ground, footprints extruded.

Everything is float64 east-north-up metres in the root frame (Cesium's eastNorthUpToFixedFrame at the region's
centre, height 0); tiles later subtract their own centre before going to float32, so a building 200 km from the
centre keeps millimetre precision. Each building's base sits on the DEM (`ground`) at its anchor: a mesh is moved
vertically as a whole (its source heights may be on another datum), a footprint is extruded from there by
height_m, else storeys × 3 m, else DEFAULT_HEIGHT_M.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mapbox_earcut
import numpy as np
import pyarrow as pa
import shapely

from lake import delta_io
from lake.meshes import MIN_TRIANGLE_AREA_M2, decode, ecef_to_enu, geodetic_to_ecef
from lake.registry import BBOX_COLUMNS, BUILDING_MESHES, BUILDINGS

STOREY_HEIGHT_M = 3.0
DEFAULT_HEIGHT_M = 9.0
ATTRIBUTES = ["building_id", "name", "function", "storeys", "height_m", "district_code"]

Ground = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Frame:
    """An east-north-up frame at (lon, lat, height): its 4×4 ENU→ECEF matrix and geodetic → ENU."""

    lon: float
    lat: float
    height: float = 0.0

    def enu(self, lon: np.ndarray, lat: np.ndarray, h: np.ndarray) -> np.ndarray:
        return ecef_to_enu(geodetic_to_ecef(lon, lat, h), self.lon, self.lat, self.height)

    def matrix(self) -> np.ndarray:
        lam, phi = np.radians(self.lon), np.radians(self.lat)
        east = [-np.sin(lam), np.cos(lam), 0.0]
        north = [-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)]
        up = [np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)]
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2] = east, north, up
        m[:3, 3] = geodetic_to_ecef(np.array([self.lon]), np.array([self.lat]), np.array([self.height]))[0]
        return m


def enu_to_ecef(enu: np.ndarray, lon: np.ndarray, lat: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Per-point ENU (relative to per-point origins) back to ECEF: the inverse of lake.meshes.ecef_to_enu."""
    lam, phi = np.radians(lon), np.radians(lat)
    sl, cl, sp, cp = np.sin(lam), np.cos(lam), np.sin(phi), np.cos(phi)
    e, n, u = enu[:, 0], enu[:, 1], enu[:, 2]
    delta = np.column_stack([-sl * e - sp * cl * n + cp * cl * u,
                             cl * e - sp * sl * n + cp * sl * u,
                             cp * n + sp * u])
    return geodetic_to_ecef(lon, lat, h) + delta


@dataclass
class Soup:
    """Triangles (t×3×3, root-frame ENU) owned by buildings (rows of `attributes`), plus what happened on the way."""

    triangles: np.ndarray
    owner: np.ndarray  # t, row in attributes
    anchors: np.ndarray  # b×2 root-frame east/north of each building (for the spatial index)
    attributes: pa.Table  # ATTRIBUTES + geometry_source ("mesh" | "extruded"), height_m filled with what was used
    meshed: int
    extruded: int
    dropped_degenerate: int


def _nonzero(triangles: np.ndarray) -> np.ndarray:
    """Triangles with area >= MIN_TRIANGLE_AREA_M2 (zero-area, repeated-index and collinear ones are not)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1) >= MIN_TRIANGLE_AREA_M2


def load_soup(frame: Frame, ground: Ground) -> Soup:
    """Every silver building: its best mesh where one has triangles left after cleaning, else its extrusion."""
    buildings = delta_io.read_table(BUILDINGS, columns=[*ATTRIBUTES, "geometry", *BBOX_COLUMNS]).sort_by("building_id")
    bbox = {c: buildings[c].to_numpy(zero_copy_only=False) for c in BBOX_COLUMNS}
    lon, lat = (bbox["bbox_xmin"] + bbox["bbox_xmax"]) / 2, (bbox["bbox_ymin"] + bbox["bbox_ymax"]) / 2
    base = ground(lon, lat)
    ids = buildings["building_id"].to_pylist()
    mesh_tris, mesh_owner, dropped = _meshes(frame, ground, {b: i for i, b in enumerate(ids)})
    has_mesh = np.zeros(len(ids), dtype=bool)
    has_mesh[mesh_owner] = True
    todo = np.flatnonzero(~has_mesh)
    height = _extrusion_height(buildings)
    wkb = buildings["geometry"].take(pa.array(todo)).to_numpy(zero_copy_only=False)
    ext_tris, ext_owner, ext_dropped = extrude(wkb, base[todo], height[todo], frame)
    delivered = buildings["height_m"].fill_null(np.nan).to_numpy(zero_copy_only=False)
    attributes = (buildings.select(ATTRIBUTES)
                  .set_column(ATTRIBUTES.index("height_m"), "height_m", pa.array(np.where(has_mesh, delivered, height)))
                  .append_column("geometry_source", pa.array(np.where(has_mesh, "mesh", "extruded"))))
    return Soup(np.concatenate([mesh_tris, ext_tris]), np.concatenate([mesh_owner, todo[ext_owner]]),
                frame.enu(lon, lat, base)[:, :2], attributes, int(has_mesh.sum()), len(todo), dropped + ext_dropped)


def _extrusion_height(buildings: pa.Table) -> np.ndarray:
    height = buildings["height_m"].fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64)
    storeys = buildings["storeys"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64) * STOREY_HEIGHT_M
    return np.where(height > 0, height, np.where(storeys > 0, storeys, DEFAULT_HEIGHT_M))


def _meshes(frame: Frame, ground: Ground, row_of: dict[str, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Mesh triangles in the root frame, each mesh lifted so its lowest vertex is on the ground at its origin.

    One mesh per building (the one with most triangles when several LoDs exist); triangles that are degenerate
    (zero area, repeated or out-of-range indices) are dropped and counted."""
    table = delta_io.read_table(BUILDING_MESHES, columns=["building_id", "origin_lon", "origin_lat", "origin_height",
                                                          "triangle_count", "positions", "indices"])
    rows = [r for r in table.to_pylist() if r["building_id"] in row_of]
    best: dict[str, dict] = {}
    for r in rows:
        if r["building_id"] not in best or (r["triangle_count"] or 0) > (best[r["building_id"]]["triangle_count"] or 0):
            best[r["building_id"]] = r
    empty = (np.zeros((0, 3, 3)), np.zeros(0, dtype=np.int64), 0)
    if not best:
        return empty
    chosen = list(best.values())
    decoded = [decode(r["positions"] or b"", r["indices"] or b"") for r in chosen]
    counts = np.array([len(v) for v, _ in decoded])
    vertices = np.concatenate([v for v, _ in decoded]).astype(np.float64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tri_counts = np.array([len(t) for _, t in decoded])
    owner_local = np.repeat(np.arange(len(chosen)), tri_counts)
    local = np.concatenate([t for _, t in decoded]).astype(np.int64)
    valid = (local < counts[owner_local, None]).all(axis=1)  # an index past the mesh's vertices: drop
    olon, olat, oh = (np.array([r[k] for r in chosen], dtype=np.float64)
                      for k in ("origin_lon", "origin_lat", "origin_height"))
    lowest = np.full(len(chosen), np.inf)
    vertex_owner = np.repeat(np.arange(len(chosen)), counts)
    np.minimum.at(lowest, vertex_owner, vertices[:, 2])
    lift = ground(olon, olat) - (oh + np.where(np.isfinite(lowest), lowest, 0.0))  # base onto the DEM
    ecef = enu_to_ecef(vertices, olon[vertex_owner], olat[vertex_owner], (oh + lift)[vertex_owner])
    root = ecef_to_enu(ecef, frame.lon, frame.lat, frame.height)
    owner_local, local = owner_local[valid], local[valid]
    triangles = root[local + starts[owner_local, None]]
    keep = _nonzero(triangles)
    dropped = int((~valid).sum() + (~keep).sum())
    owner = np.array([row_of[r["building_id"]] for r in chosen])[owner_local[keep]]
    return triangles[keep], owner, dropped


def extrude(wkb: np.ndarray, base: np.ndarray, height: np.ndarray, frame: Frame
            ) -> tuple[np.ndarray, np.ndarray, int]:
    """Footprints (WKB polygons/multipolygons, lon/lat) as prisms: walls for every ring edge, a roof by earcut.

    Returns triangles (root frame), the index into the inputs of each, and how many degenerate ones were dropped.
    Walls face outwards and roofs up (exteriors counter-clockwise, holes clockwise)."""
    empty = (np.zeros((0, 3, 3)), np.zeros(0, dtype=np.int64), 0)
    if len(wkb) == 0:
        return empty
    polygons, poly_owner = shapely.get_parts(shapely.from_wkb(wkb), return_index=True)
    polygons = shapely.orient_polygons(polygons)
    rings, ring_poly = shapely.get_rings(polygons, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    same_as_previous = np.zeros(len(coords), dtype=bool)
    same_as_previous[1:] = (coord_ring[1:] == coord_ring[:-1]) & (coords[1:] == coords[:-1]).all(axis=1)
    coords, coord_ring = coords[~same_as_previous], coord_ring[~same_as_previous]  # repeated points: one
    owner = poly_owner[ring_poly[coord_ring]]
    bottom = frame.enu(coords[:, 0], coords[:, 1], base[owner])
    top = frame.enu(coords[:, 0], coords[:, 1], base[owner] + height[owner])
    edge = np.flatnonzero(coord_ring[1:] == coord_ring[:-1])  # closed rings: edge i -> i + 1
    a, b = edge, edge + 1
    walls = np.concatenate([np.stack([bottom[a], bottom[b], top[b]], axis=1),
                            np.stack([bottom[a], top[b], top[a]], axis=1)])
    wall_owner = np.concatenate([owner[a], owner[a]])
    roof_idx, roof_poly = _roofs(bottom[:, :2], coord_ring, ring_poly)
    roofs = top[roof_idx]
    triangles = np.concatenate([walls, roofs])
    tri_owner = np.concatenate([wall_owner, poly_owner[roof_poly]])
    keep = _nonzero(triangles)
    return triangles[keep], tri_owner[keep], int((~keep).sum())


def _roofs(xy: np.ndarray, coord_ring: np.ndarray, ring_poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate each polygon (open rings) in the horizontal plane; triangles as vertex indices (into `xy`),
    counter-clockwise, with the polygon of each. Convex polygons without holes (most footprints) are fanned all
    at once; the others go through earcut one by one."""
    closing = np.zeros(len(coord_ring), dtype=bool)
    closing[:-1] = coord_ring[1:] != coord_ring[:-1]
    closing[-1] = True
    open_idx = np.flatnonzero(~closing)  # drop each ring's repeated first point
    ring_len = np.bincount(coord_ring[open_idx], minlength=len(ring_poly))
    ring_end = np.cumsum(ring_len)  # rings' ends in the open points
    ring_start = ring_end - ring_len
    polys = int(ring_poly.max()) + 1 if len(ring_poly) else 0
    first_ring = np.searchsorted(ring_poly, np.arange(polys))
    rings_of = np.bincount(ring_poly, minlength=polys)
    fanned = (rings_of == 1) & (ring_len[first_ring] >= 3) & _convex(xy[open_idx], ring_start, ring_len)[first_ring]
    fan_idx, fan_poly = _fans(ring_start[first_ring[fanned]], ring_len[first_ring[fanned]], np.flatnonzero(fanned))
    out, owners = [open_idx[fan_idx]], [fan_poly]
    for p in np.flatnonzero(~fanned & (ring_len[first_ring] >= 3)):
        r0, r1 = first_ring[p], first_ring[p] + rings_of[p]
        start = ring_start[r0]
        ends = (ring_end[r0:r1] - start).astype(np.uint32)
        points = xy[open_idx[start:start + ends[-1]]]
        tris = mapbox_earcut.triangulate_float64(points - points[0], ends).astype(np.int64).reshape(-1, 3)
        out.append(open_idx[tris + start])
        owners.append(np.full(len(tris), p))
    idx, owner = np.concatenate(out), np.concatenate(owners)
    p0, p1, p2 = xy[idx[:, 0]], xy[idx[:, 1]], xy[idx[:, 2]]
    clockwise = ((p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])) < 0
    idx[clockwise] = idx[clockwise][:, ::-1]
    return idx, owner


def _convex(points: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Per ring: strictly convex and counter-clockwise (every turn left by more than a sliver)."""
    ring = np.repeat(np.arange(len(start)), length)
    k = np.arange(len(points)) - start[ring]
    a = points
    b = points[start[ring] + (k + 1) % length[ring]]
    c = points[start[ring] + (k + 2) % length[ring]]
    turn = (b[:, 0] - a[:, 0]) * (c[:, 1] - b[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - b[:, 0])
    left = np.ones(len(start), dtype=bool)
    np.logical_and.at(left, ring, turn > 2 * MIN_TRIANGLE_AREA_M2)
    return left


def _fans(start: np.ndarray, length: np.ndarray, poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fan triangles (s, s + j, s + j + 1), j = 1 .. n - 2, of convex rings starting at s with n points."""
    counts = length - 2
    first = np.repeat(start, counts)
    j = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    return np.column_stack([first, first + j, first + j + 1]), np.repeat(poly, counts)
