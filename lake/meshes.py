"""Building meshes for the twin: triangulate surfaces, georeference to east-north-up, derive the footprint.

Shared by the IFC, CityJSON and CityGML readers. Coordinates stay float64 until they are relative to a building's
ENU origin (metres within ~100 m of zero), so projected or IFC coordinates with large offsets keep their precision;
only then do they become float32. The stored encoding (`silver.building_meshes`) is what a glTF/3D Tiles writer
consumes directly: positions float32 little-endian x,y,z (east, north, up, metres), indices uint32 little-endian
triangles, frame = Cesium's eastNorthUpToFixedFrame at (origin_lon, origin_lat, origin_height) on CGCS2000.
"""

from __future__ import annotations

from dataclasses import dataclass

import mapbox_earcut
import numpy as np
import shapely

from lake.crs import CGCS2000_A, CGCS2000_RF

MIN_TRIANGLE_AREA_M2 = 1e-6  # smaller triangles are degenerate (slivers, repeated points) and are dropped
_E2 = (2.0 - 1.0 / CGCS2000_RF) / CGCS2000_RF


@dataclass
class Mesh:
    """Triangles over float64 vertices (n×3) in one coordinate frame."""

    vertices: np.ndarray
    triangles: np.ndarray  # m×3 int64 indices into vertices

    @classmethod
    def empty(cls) -> Mesh:
        return cls(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))

    @classmethod
    def concat(cls, meshes: list[Mesh]) -> Mesh:
        if not meshes:
            return cls.empty()
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        return cls(np.concatenate([m.vertices for m in meshes]),
                   np.concatenate([m.triangles + o for m, o in zip(meshes, offsets, strict=True)]))


def triangulate_polygons(polygons: list[list[np.ndarray]]) -> Mesh:
    """Triangulate planar 3D polygons (each: exterior ring first, then holes) with earcut, each in its own plane.

    Rings may repeat their first point at the end (GML, closed lists); it is dropped. Non-planar polygons are
    projected onto their best-fit (Newell) plane, which is what producers mean by them. The planes of all
    polygons are computed at once: city models have millions of small polygons.
    """
    cleaned = [[r for r in (_open_ring(np.asarray(r, dtype=np.float64)) for r in rings) if len(r) >= 3]
               for rings in polygons]
    cleaned = [rings for rings in cleaned if rings]
    if not cleaned:
        return Mesh.empty()
    bases = _plane_bases([rings[0] for rings in cleaned])
    vertices, triangles, offset = [], [], 0
    for rings, basis in zip(cleaned, bases, strict=True):
        if not np.isfinite(basis).all():
            continue  # a degenerate ring (all points on a line): no area to triangulate
        points = rings[0] if len(rings) == 1 else np.concatenate(rings)
        if len(points) == 3:
            indices = _ONE_TRIANGLE
        else:
            ends = np.array([len(points)] if len(rings) == 1 else np.cumsum([len(r) for r in rings]), np.uint32)
            flat = (points - points[0]) @ basis
            indices = mapbox_earcut.triangulate_float64(flat, ends).astype(np.int64).reshape(-1, 3)
        vertices.append(points)
        triangles.append(indices + offset)
        offset += len(points)
    if not vertices:
        return Mesh.empty()
    return Mesh(np.concatenate(vertices), np.concatenate(triangles))


_ONE_TRIANGLE = np.array([[0, 1, 2]], dtype=np.int64)


def _open_ring(ring: np.ndarray) -> np.ndarray:
    if len(ring) > 1 and (ring[0] == ring[-1]).all():
        ring = ring[:-1]
    repeated = (ring[1:] == ring[:-1]).all(axis=1)
    return ring[np.concatenate([[True], ~repeated])] if repeated.any() else ring  # duplicates confuse earcut


def _plane_bases(rings: list[np.ndarray]) -> np.ndarray:
    """Per ring a 3×2 matrix of orthonormal (u, v) with u × v = its Newell normal (so earcut keeps the ring's
    orientation); NaN where the ring has no normal."""
    sizes = np.array([len(r) for r in rings])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    points = np.concatenate(rings)
    following = np.arange(len(points)) + 1
    following[starts + sizes - 1] = starts
    nxt = points[following]
    x, y, z, xn, yn, zn = points[:, 0], points[:, 1], points[:, 2], nxt[:, 0], nxt[:, 1], nxt[:, 2]
    normal = np.column_stack([np.add.reduceat((y - yn) * (z + zn), starts),
                              np.add.reduceat((z - zn) * (x + xn), starts),
                              np.add.reduceat((x - xn) * (y + yn), starts)])
    with np.errstate(invalid="ignore", divide="ignore"):
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        helper = np.where((np.abs(normal[:, 2]) < 0.9)[:, None], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0])
        u = np.cross(helper, normal)
        u /= np.linalg.norm(u, axis=1, keepdims=True)
    return np.stack([u, np.cross(normal, u)], axis=2)


# --- georeferencing: geodetic -> ECEF -> local east-north-up ------------------------------------------------
def geodetic_to_ecef(lon: np.ndarray, lat: np.ndarray, h: np.ndarray) -> np.ndarray:
    lam, phi = np.radians(lon), np.radians(lat)
    n = CGCS2000_A / np.sqrt(1.0 - _E2 * np.sin(phi) ** 2)
    return np.column_stack([(n + h) * np.cos(phi) * np.cos(lam), (n + h) * np.cos(phi) * np.sin(lam),
                            (n * (1.0 - _E2) + h) * np.sin(phi)])


def ecef_to_enu(ecef: np.ndarray, origin_lon: np.ndarray, origin_lat: np.ndarray,
                origin_h: np.ndarray) -> np.ndarray:
    """Per-point ENU coordinates relative to per-point origins (vectorised over many buildings at once)."""
    delta = ecef - geodetic_to_ecef(origin_lon, origin_lat, origin_h)
    lam, phi = np.radians(origin_lon), np.radians(origin_lat)
    sl, cl, sp, cp = np.sin(lam), np.cos(lam), np.sin(phi), np.cos(phi)
    east = -sl * delta[:, 0] + cl * delta[:, 1]
    north = -sp * cl * delta[:, 0] - sp * sl * delta[:, 1] + cp * delta[:, 2]
    up = cp * cl * delta[:, 0] + cp * sl * delta[:, 1] + sp * delta[:, 2]
    return np.column_stack([east, north, up])


# --- cleaning, footprint, encoding --------------------------------------------------------------------------
def triangle_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def drop_degenerate(mesh: Mesh, metric_vertices: np.ndarray) -> Mesh:
    """Drop triangles under MIN_TRIANGLE_AREA_M2 (measured on `metric_vertices`, e.g. ENU) and unused vertices."""
    if len(mesh.triangles) == 0:
        return Mesh(mesh.vertices[:0], mesh.triangles)
    kept = mesh.triangles[triangle_areas(metric_vertices, mesh.triangles) >= MIN_TRIANGLE_AREA_M2]
    used, remap = np.unique(kept, return_inverse=True)
    return Mesh(mesh.vertices[used], remap.reshape(-1, 3))


def footprint(vertices_xy: np.ndarray, triangles: np.ndarray) -> shapely.Geometry | None:
    """The ground footprint: union of all triangles projected to the horizontal plane (walls vanish, roofs and
    floors cover the plan); where that leaves holes or parts, again on a grid of 1e-7 of the building's extent so
    shared edges fuse without slivers."""
    if len(triangles) == 0:
        return None
    low = vertices_xy.min(axis=0)
    local = vertices_xy - low  # large projected coordinates: union near zero, then shift back
    extent = float(np.ptp(local, axis=0).max()) or 1.0
    rings = np.concatenate([local[triangles], local[triangles[:, :1]]], axis=1)
    polygons = shapely.polygons(rings)
    polygons = polygons[shapely.area(polygons) > (extent * 1e-6) ** 2]
    if len(polygons) == 0:
        return None
    merged = shapely.union_all(polygons)  # exact union is 3x faster; snap only when slivers may have split it
    if merged.geom_type != "Polygon" or shapely.get_num_interior_rings(merged):
        merged = shapely.union_all(polygons, grid_size=extent * 1e-7)
    merged = shapely.simplify(merged, extent * 1e-5)
    return None if merged.is_empty else shapely.transform(merged, lambda coords: coords + low)


def encode(enu: np.ndarray, triangles: np.ndarray) -> tuple[bytes, bytes]:
    """positions (float32le xyz) and indices (uint32le) as stored in silver.building_meshes."""
    return enu.astype("<f4").tobytes(), triangles.astype("<u4").tobytes()


def decode(positions: bytes, indices: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of `encode`, for consumers (the twin's tile builder, tests)."""
    return (np.frombuffer(positions, dtype="<f4").reshape(-1, 3),
            np.frombuffer(indices, dtype="<u4").reshape(-1, 3))
