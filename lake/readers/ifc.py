"""IFC 2x3, 4 and 4.3 building models (IfcOpenShell): one row per IfcBuilding, its mesh from all its elements.

Rows: an IfcBuilding is the unit the owner names and the city tracks (FZK-Haus is one building), so each one is a
row; its mesh is every physical element contained in it (walls, slabs, roofs, windows, ..., through storeys and
aggregates), triangulated by ifcopenshell.geom in world coordinates (metres, float64). Furniture, openings and
virtual elements are left out. The pre-release schema IFC4X3_RC2 is read as IFC4X3_ADD2 (its entities are a subset
for buildings and sites). A file with no IfcBuilding (e.g. a road model) is rejected. Height:
Qto_BuildingBaseQuantities.Height when delivered, else the mesh's vertical extent.

Georeferencing, first that applies:
1. IfcMapConversion to an IfcProjectedCRS (IFC4+; IFC2x3 ePSet_MapConversion): map = E/N/H + Scale·R·local, in the
   CRS named by the IfcProjectedCRS (EPSG code). A Scale that contradicts the units (e.g. 1000 for a millimetre
   project in a metre CRS, as in the buildingSMART UTM sample) is taken as a units mix-up and ignored.
2. IfcSite RefLatitude/RefLongitude/RefElevation (compound angles): the reference point is the site placement's
   origin, north from the model context's TrueNorth, heights RefElevation + z.
3. The contract's `options.placement: {lon, lat, height, rotation_deg}`: the world origin at lon/lat/height,
   rotation_deg = clockwise bearing of the model's +Y axis from true north (default 0).
Otherwise the file is rejected. `placement: {..., override: true}` makes the contract's placement win over the
file's own georeference (for a model whose site point or true north is known to be wrong). 2 and 3 give a local
transverse Mercator frame at the reference point (CGCS2000), the ENU plane to under a millimetre over a building.
Projected coordinates are taken easting first (GIS order), whatever the EPSG axis order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ifcopenshell
import ifcopenshell.geom
import ifcopenshell.util.element
import ifcopenshell.util.geolocation
import ifcopenshell.util.placement
import ifcopenshell.util.unit
import numpy as np
import pyproj
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import TransverseMercatorConversion

from lake.crs import TARGET_EPSG
from lake.errors import FeedReadError, OnemapError
from lake.meshes import Mesh
from lake.readers.cim import BuildingModel, SourceFrame, as_float, buildings_batch, split_crs_name
from lake.readers.raw_batch import RawBatch

if TYPE_CHECKING:
    from lake.contracts import FeedContract

_END = b"END-ISO-10303-21;"
_PRE_RELEASE = {b"'IFC4X3_RC2'": b"'IFC4X3_ADD2'"}
_LEFT_OUT = ("IfcOpeningElement", "IfcFurnishingElement", "IfcVirtualElement", "IfcFeatureElement")


@dataclass(frozen=True)
class Georeference:
    """How world coordinates (metres) become coordinates in `frame`: a 2D similarity plus a height offset."""

    frame: SourceFrame
    origin: np.ndarray  # world point (m) that maps to `offset`
    rotation: np.ndarray  # 2×2, world x/y -> frame x/y
    scale: float
    offset: np.ndarray  # frame x, y, z of the origin
    method: str

    def apply(self, points: np.ndarray) -> np.ndarray:
        local = points - self.origin
        xy = self.scale * local[:, :2] @ self.rotation.T + self.offset[:2]
        return np.column_stack([xy, local[:, 2] + self.offset[2]])


def read_ifc(source: str, contract: FeedContract) -> RawBatch:
    model = _open(source)
    buildings = model.by_type("IfcBuilding")
    if not buildings:
        kinds = sorted({e.is_a() for e in model.by_type("IfcSpatialStructureElement")}) or ["none"]
        raise FeedReadError(source, f"no IfcBuilding in the model (spatial elements: {', '.join(kinds)}); the "
                                    "buildings feed takes building models")
    georef = _georeference(model, contract, source)
    meshes = _meshes_by_building(model, source)
    unit = ifcopenshell.util.unit.calculate_unit_scale(model)
    models = []
    for b in buildings:
        mesh = Mesh.concat(meshes.get(b.id(), []))
        models.append(BuildingModel(
            id=b.GlobalId, mesh=Mesh(georef.apply(mesh.vertices), mesh.triangles), lod="BIM",
            source_format=model.schema_identifier, name=b.Name or b.LongName,
            function=b.ObjectType, usage=_pset_value(b, "Pset_BuildingCommon", "OccupancyType"),
            storeys=_storeys_above_ground(b), height=_delivered_height(b, unit)))
    return buildings_batch(source, f"{model.schema_identifier} ({georef.method})", models, georef.frame, contract)


def _open(source: str) -> ifcopenshell.file:
    with open(source, "rb") as f:
        header = f.read(4096)
        f.seek(max(0, f.seek(0, 2) - 4096))
        tail = f.read()
    if _END not in tail:
        raise FeedReadError(source, "truncated IFC: the STEP file does not end with END-ISO-10303-21; re-export "
                                    "or re-copy the whole file")
    try:
        pre_release = next(((old, new) for old, new in _PRE_RELEASE.items() if old in header), None)
        if pre_release is None:
            return ifcopenshell.open(source)
        text = Path(source).read_bytes().replace(*pre_release, 1)
        return ifcopenshell.file.from_string(text.decode("utf-8", errors="replace"))
    except (RuntimeError, OSError, ifcopenshell.Error, ifcopenshell.SchemaError) as exc:
        raise FeedReadError(source, f"not readable as IFC (STEP): {exc}") from exc


# --- georeferencing ------------------------------------------------------------------------------------------
def _georeference(model: ifcopenshell.file, contract: FeedContract, source: str) -> Georeference:
    placement = (contract.options or {}).get("placement")
    if placement and placement.get("override"):
        return _contract_placement(placement, contract, source)
    for method in (_map_conversion, _site_reference):
        if (found := method(model, source)) is not None:
            return found
    if placement:
        return _contract_placement(placement, contract, source)
    raise FeedReadError(source, "no georeference: the IFC has no IfcMapConversion/IfcProjectedCRS and no IfcSite "
                                f"RefLatitude/RefLongitude; add options.placement {{lon, lat, height, rotation_deg}} "
                                f"to feed contract {contract.feed}")


def _contract_placement(placement: dict[str, Any], contract: FeedContract, source: str) -> Georeference:
    try:
        return _local_frame(float(placement["lon"]), float(placement["lat"]), float(placement.get("height", 0)),
                            float(placement.get("rotation_deg", 0)), np.zeros(3), "contract placement")
    except (KeyError, TypeError, ValueError) as exc:
        raise FeedReadError(source, f"options.placement of feed {contract.feed} needs numeric lon, lat "
                                    f"(height, rotation_deg, override optional): {exc}") from exc


def _map_conversion(model: ifcopenshell.file, source: str) -> Georeference | None:
    params = ifcopenshell.util.geolocation.get_helmert_transformation_parameters(model)
    crs_name, vertical_datum = _target_crs(model)
    if params is None or crs_name is None:
        return None
    try:
        frame = split_crs_name(crs_name)
    except OnemapError as exc:
        raise FeedReadError(source, f"IfcProjectedCRS {crs_name!r}: {exc}") from exc
    if frame.height_reference is None and vertical_datum:
        frame = SourceFrame(frame.crs, vertical_datum)
    project_unit = ifcopenshell.util.unit.calculate_unit_scale(model)  # project unit -> metre
    per_metre = params.scale / project_unit  # map units per world metre, as the file states it
    scale = per_metre if 0.5 < per_metre < 2 else (params.scale if 0.5 < params.scale < 2 else 1.0)
    angle = math.atan2(params.xao, params.xaa)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    offset = np.array([params.e, params.n, params.h], dtype=np.float64)
    return Georeference(frame, np.zeros(3), rotation, scale, offset, f"IfcMapConversion to {frame.crs}")


def _target_crs(model: ifcopenshell.file) -> tuple[str | None, str | None]:
    """Name (EPSG code) and vertical datum of the IfcProjectedCRS (IFC2x3: ePSet_ProjectedCRS)."""
    if model.schema == "IFC2X3":
        project = model.by_type("IfcProject")[0]
        pset = ifcopenshell.util.element.get_pset(project, "ePSet_ProjectedCRS") or {}
        return pset.get("Name"), pset.get("VerticalDatum")
    operations = model.by_type("IfcMapConversion")
    target = operations[0].TargetCRS if operations else None
    if target is None or not target.is_a("IfcProjectedCRS"):
        return None, None
    return target.Name, target.VerticalDatum


def _site_reference(model: ifcopenshell.file, source: str) -> Georeference | None:
    site = next((s for s in model.by_type("IfcSite") if s.RefLatitude and s.RefLongitude), None)
    if site is None:
        return None
    lat, lon = _compound_angle(site.RefLatitude), _compound_angle(site.RefLongitude)
    if lat == 0 and lon == 0:
        return None  # exporters write (0,0,0) for "not set"
    unit = ifcopenshell.util.unit.calculate_unit_scale(model)
    origin = np.zeros(3)
    if site.ObjectPlacement is not None:
        origin = ifcopenshell.util.placement.get_local_placement(site.ObjectPlacement)[:3, 3] * unit
    return _local_frame(lon, lat, float(site.RefElevation or 0.0) * unit, _true_north_bearing(model), origin,
                        "IfcSite reference point")


def _compound_angle(value: Any) -> float:
    """IfcCompoundPlaneAngleMeasure (degrees, minutes, seconds, millionths; all with the same sign)."""
    parts = list(value) + [0] * (4 - len(value))
    return parts[0] + parts[1] / 60 + (parts[2] + parts[3] / 1e6) / 3600


def _true_north_bearing(model: ifcopenshell.file) -> float:
    """Clockwise bearing (degrees) of the model's +Y axis from true north, from the 3D context's TrueNorth."""
    for context in model.by_type("IfcGeometricRepresentationContext", include_subtypes=False):
        if context.TrueNorth is not None:
            x, y = context.TrueNorth.DirectionRatios[:2]
            return -math.degrees(math.atan2(x, y))  # TrueNorth: where north points in model x/y
    return 0.0


def _local_frame(lon: float, lat: float, height: float, bearing_deg: float, origin: np.ndarray,
                 method: str) -> Georeference:
    crs = ProjectedCRS(
        conversion=TransverseMercatorConversion(latitude_natural_origin=lat, longitude_natural_origin=lon,
                                                false_easting=0, false_northing=0, scale_factor_natural_origin=1),
        geodetic_crs=pyproj.CRS.from_epsg(TARGET_EPSG), name=f"local frame at {lat:.6f}N {lon:.6f}E ({method})")
    a = math.radians(bearing_deg)  # rotate model axes to east/north: +Y points at bearing a
    rotation = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    return Georeference(SourceFrame(crs.to_wkt()), origin, rotation, 1.0, np.array([0.0, 0.0, height]), method)


# --- geometry ------------------------------------------------------------------------------------------------
def _meshes_by_building(model: ifcopenshell.file, source: str) -> dict[int, list[Mesh]]:
    """World-coordinate meshes of the physical elements, grouped by the id of their IfcBuilding."""
    elements = [e for e in model.by_type("IfcElement") if not any(e.is_a(k) for k in _LEFT_OUT)
                and e.Representation is not None]
    owner = {e.id(): _building_of(e) for e in elements}
    elements = [e for e in elements if owner[e.id()] is not None]
    if not elements:
        return {}
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    iterator = ifcopenshell.geom.iterator(settings, model, 1, include=elements)  # threads measured slower here
    meshes: dict[int, list[Mesh]] = {}
    try:
        ok = iterator.initialize()
    except RuntimeError as exc:
        raise FeedReadError(source, f"IFC geometry could not be built: {exc}") from exc
    while ok:
        shape = iterator.get()
        vertices = np.asarray(shape.geometry.verts, dtype=np.float64).reshape(-1, 3)
        faces = np.asarray(shape.geometry.faces, dtype=np.int64).reshape(-1, 3)
        if len(faces):
            meshes.setdefault(owner[shape.id], []).append(Mesh(vertices, faces))
        ok = iterator.next()
    return meshes


def _building_of(element: ifcopenshell.entity_instance) -> int | None:
    """The IfcBuilding an element belongs to, through aggregates, containment and spatial decomposition."""
    current = element
    for _ in range(32):
        parent = ifcopenshell.util.element.get_aggregate(current) or ifcopenshell.util.element.get_container(current)
        if parent is None:
            return None
        if parent.is_a("IfcBuilding"):
            return parent.id()
        current = parent
    return None


def _storeys_above_ground(building: ifcopenshell.entity_instance) -> int | None:
    storeys = [s for s in ifcopenshell.util.element.get_decomposition(building) if s.is_a("IfcBuildingStorey")]
    if not storeys:
        return None
    return sum(1 for s in storeys if s.Elevation is None or s.Elevation >= -1e-6)


def _delivered_height(building: ifcopenshell.entity_instance, unit: float) -> float | None:
    height = as_float(_pset_value(building, "Qto_BuildingBaseQuantities", "Height"))
    return None if height is None else height * unit


def _pset_value(element: ifcopenshell.entity_instance, pset: str, name: str) -> str | None:
    value = (ifcopenshell.util.element.get_pset(element, pset) or {}).get(name)
    return None if value is None else str(value)
