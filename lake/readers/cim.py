"""What the IFC, CityJSON and CityGML readers share: one building record per model building, turned into a
RawBatch of footprints (source CRS) with the georeferenced mesh of each building as a `building_meshes` child.

Every reader delivers the same attribute columns, so CIM contracts look alike:
  id, name, function, usage, storeys, height (delivered measured height, else the mesh's vertical extent),
  height_source (delivered | geometry), lod, source_format.
The footprint is the union of the mesh's triangles projected to the ground (identical rule for all formats, so the
same building from IFC and CityGML gets comparable footprints).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyproj
import shapely

from lake.canonical import canonicalize
from lake.crs import TARGET_EPSG, resolve_crs
from lake.errors import FeedReadError, OnemapError
from lake.meshes import Mesh, drop_degenerate, ecef_to_enu, encode, footprint, geodetic_to_ecef
from lake.readers.raw_batch import RawBatch
from lake.registry import BUILDING_MESHES, SILVER

if TYPE_CHECKING:
    from lake.contracts import FeedContract

ATTRIBUTE_TYPES = {"id": pa.string(), "name": pa.string(), "function": pa.string(), "usage": pa.string(),
                   "storeys": pa.int32(), "height": pa.float64(), "height_source": pa.string(), "lod": pa.string(),
                   "source_format": pa.string()}

# German AdV CRS names (used by the KIT/3DCityDB CityGML samples) that pyproj does not know.
_ADV_CRS = {"ETRS89_UTM32": "EPSG:25832", "ETRS89_UTM33": "EPSG:25833", "DE_DHDN_3GK2": "EPSG:31466",
            "DE_DHDN_3GK3": "EPSG:31467", "DE_DHDN_3GK4": "EPSG:31468", "DE_DHDN_3GK5": "EPSG:31469",
            "DE_DHHN92_NH": "EPSG:5783", "DE_DHHN2016_NH": "EPSG:7837"}


@dataclass
class BuildingModel:
    """One building as a reader found it: delivered attributes and its mesh in the source frame."""

    id: str
    mesh: Mesh
    lod: str
    source_format: str
    name: str | None = None
    function: str | None = None
    usage: str | None = None
    storeys: int | None = None
    height: float | None = None
    height_source: str = "delivered"  # or "geometry" when the reader had no delivered height


@dataclass(frozen=True)
class SourceFrame:
    """The frame of the mesh vertices: a horizontal CRS (what the footprint is in) and the heights' reference."""

    crs: str  # EPSG code or WKT, as RawBatch.crs
    height_reference: str | None = None


def split_crs_name(name: str) -> SourceFrame:
    """A CRS name as delivered (EPSG:x, OGC URN/URL, compound URN, AdV name) → horizontal CRS + vertical CRS.

    Raises OnemapError when pyproj does not know it.
    """
    text = name.strip()
    if text.lower().startswith("urn:adv:crs:"):
        parts = [_ADV_CRS.get(p) for p in text[len("urn:adv:crs:"):].split("*")]
        if parts[0] is None:
            raise OnemapError(f"unknown AdV CRS {text!r}; declare an EPSG code in the feed contract (`crs:`)")
        return SourceFrame(parts[0], parts[1] if len(parts) > 1 else None)
    crs = resolve_crs(text).crs
    if crs is None:
        return SourceFrame(text)
    if crs.is_compound:
        horizontal, vertical = crs.sub_crs_list[0], crs.sub_crs_list[-1]
        return SourceFrame(_label(horizontal), _label(vertical))
    return SourceFrame(_label(crs))


def _label(crs: pyproj.CRS) -> str:
    epsg = crs.to_epsg(min_confidence=70)
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def frame_for(source: str, declared: str | None, contract: FeedContract) -> SourceFrame:
    """The frame to georeference with: the file's CRS, else (or with crs_override) the contract's; else reject."""
    chosen = contract.crs if (contract.crs_override or not declared) else declared
    if not chosen:
        raise FeedReadError(source, "no CRS: the file declares none (srsName / metadata.referenceSystem) and its "
                                    f"feed contract {contract.feed} declares none; add `crs:` to the contract")
    try:
        return split_crs_name(chosen)
    except OnemapError as exc:
        raise FeedReadError(source, str(exc)) from exc


@lru_cache(maxsize=32)
def _to_lonlat(crs: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(crs), TARGET_EPSG, always_xy=True)


def buildings_batch(source: str, layer: str, buildings: list[BuildingModel], frame: SourceFrame,
                    contract: FeedContract) -> RawBatch:
    """Footprints, attributes and meshes of all buildings of one file; vertices are transformed in one call."""
    if not buildings:
        raise FeedReadError(source, f"no buildings in {layer}: nothing to ingest into the buildings table")
    sizes = np.array([len(b.mesh.vertices) for b in buildings])
    vertices = np.concatenate([b.mesh.vertices for b in buildings]) if sizes.sum() else np.zeros((0, 3))
    lon, lat = _to_lonlat(frame.crs).transform(vertices[:, 0], vertices[:, 1])
    if sizes.sum() and not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise FeedReadError(source, f"coordinates do not transform from {frame.crs[:60]} to CGCS2000: wrong CRS? "
                                    "check the file's CRS or the contract's `crs:`")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    origins = np.array([_origin(lon[s:s + n], lat[s:s + n], vertices[s:s + n, 2]) if n else (0.0, 0.0, 0.0)
                        for s, n in zip(starts, sizes, strict=True)]).reshape(-1, 3)
    per_vertex = np.repeat(origins, sizes, axis=0)
    enu = ecef_to_enu(geodetic_to_ecef(lon, lat, vertices[:, 2]), per_vertex[:, 0], per_vertex[:, 1],
                      per_vertex[:, 2])
    footprints, mesh_rows = [], []
    for b, s, n, origin in zip(buildings, starts, sizes, origins, strict=True):
        both = np.column_stack([enu[s:s + n], vertices[s:s + n, :2]])
        clean = drop_degenerate(Mesh(both, b.mesh.triangles), enu[s:s + n])
        footprints.append(footprint(clean.vertices[:, 3:], clean.triangles))
        mesh_rows.append((origin, clean.vertices[:, :3], clean.triangles))
        if b.height is None and len(clean.triangles):
            b.height, b.height_source = float(np.ptp(clean.vertices[:, 2])), "geometry"
    attributes = _attributes(buildings)
    geometry = np.array([None if g is None else shapely.to_wkb(g) for g in footprints], dtype=object)
    batch = RawBatch(source, layer, attributes, geometry, frame.crs)
    batch.children = {BUILDING_MESHES.name: _mesh_table(batch, contract, buildings, mesh_rows, frame)}
    return batch


def _origin(lon: np.ndarray, lat: np.ndarray, h: np.ndarray) -> tuple[float, float, float]:
    return (float(lon.min() + lon.max()) / 2, float(lat.min() + lat.max()) / 2, float(h.min()))


def _attributes(buildings: list[BuildingModel]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in ATTRIBUTE_TYPES}
    for b in buildings:
        values = {"id": b.id, "name": b.name, "function": b.function, "usage": b.usage, "storeys": b.storeys,
                  "height": b.height, "height_source": b.height_source, "lod": b.lod,
                  "source_format": b.source_format}
        for name in columns:
            columns[name].append(values[name])
    return pa.table({name: pa.array(values, ATTRIBUTE_TYPES[name]) for name, values in columns.items()})


def _mesh_table(batch: RawBatch, contract: FeedContract, buildings: list[BuildingModel],
                rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], frame: SourceFrame) -> pa.Table:
    """Mesh rows keyed like their building rows (the contract's building_id, lod and district_code rules)."""
    canonical = canonicalize(batch, contract, SILVER[contract.table]).columns
    encoded = [encode(enu, triangles) for _, enu, triangles in rows]
    lod = canonical["lod"] if "lod" in contract.fields else pa.array([b.lod for b in buildings], pa.string())
    return pa.table({
        "building_id": canonical["building_id"], "lod": lod, "district_code": canonical["district_code"],
        "origin_lon": [o[0] for o, _, _ in rows], "origin_lat": [o[1] for o, _, _ in rows],
        "origin_height": [o[2] for o, _, _ in rows],
        "height_reference": pa.array([frame.height_reference] * len(rows), pa.string()),
        "vertex_count": pa.array([len(v) for _, v, _ in rows], pa.int32()),
        "triangle_count": pa.array([len(t) for _, _, t in rows], pa.int32()),
        "positions": pa.array([p for p, _ in encoded], pa.binary()),
        "indices": pa.array([i for _, i in encoded], pa.binary()),
        "_parent_row": pa.array(np.arange(1, len(rows) + 1), pa.int64()),
    })


def as_int(value: Any) -> int | None:
    """A delivered count (text or number) as int; None when absent or not a number."""
    try:
        return None if value is None or value == "" else int(float(value))
    except (TypeError, ValueError):
        return None


def as_float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None
