"""Demo CIM/BIM deliveries in 渝中区 (Yuzhong, 500103): an IFC, a CityJSON 2.0 and a CityGML 2.0 file that the real
readers ingest, so `make demo` exercises the whole CIM path offline.

Everything is deterministic for a seed: GlobalIds derive from the seed, the IFC header time stamp is fixed.
Coordinates are CGCS2000 / 3-degree Gauss–Krüger CM 108E (EPSG:4545) written easting-first, heights in the
Yellow Sea 1985 datum (EPSG:5737), around 106.57E 29.56N. The gable-roof house generator is also what the CIM
benchmark uses to make thousands of LoD2 buildings.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass
from pathlib import Path

import ifcopenshell
import ifcopenshell.api.aggregate
import ifcopenshell.api.context
import ifcopenshell.api.geometry
import ifcopenshell.api.georeference
import ifcopenshell.api.project
import ifcopenshell.api.root
import ifcopenshell.api.spatial
import ifcopenshell.api.unit
import ifcopenshell.guid
import numpy as np
import pyproj

CENTRE_LON, CENTRE_LAT, GROUND_M = 106.570, 29.560, 245.0
DEMO_CRS = "EPSG:4545"
CITYGML_SRS = "urn:ogc:def:crs,crs:EPSG::4545,crs:EPSG::5737"
_NS = {"core": "http://www.opengis.net/citygml/2.0", "bldg": "http://www.opengis.net/citygml/building/2.0",
       "gml": "http://www.opengis.net/gml"}


@dataclass(frozen=True)
class House:
    """A gable-roof LoD2 house: footprint width × depth (m) at easting/northing, rotated, with eave and ridge."""

    id: str
    east: float
    north: float
    width: float
    depth: float
    eave: float
    ridge: float
    angle_deg: float
    ground: float
    storeys: int
    function: str

    def polygons(self) -> list[np.ndarray]:
        """Ground, 4 walls (2 gables), 2 roof planes; each ring counter-clockwise seen from outside."""
        w, d, h, r = self.width, self.depth, self.eave, self.ridge
        rings = [
            [(0, 0, 0), (0, d, 0), (w, d, 0), (w, 0, 0)],
            [(0, 0, 0), (w, 0, 0), (w, 0, h), (0, 0, h)],
            [(w, d, 0), (0, d, 0), (0, d, h), (w, d, h)],
            [(w, 0, 0), (w, d, 0), (w, d, h), (w, d / 2, r), (w, 0, h)],
            [(0, d, 0), (0, 0, 0), (0, 0, h), (0, d / 2, r), (0, d, h)],
            [(0, 0, h), (w, 0, h), (w, d / 2, r), (0, d / 2, r)],
            [(w, d, h), (0, d, h), (0, d / 2, r), (w, d / 2, r)],
        ]
        a = math.radians(self.angle_deg)
        rotation = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        offset = np.array([self.east, self.north, self.ground])
        return [np.asarray(ring, dtype=np.float64) @ rotation.T + offset for ring in rings]


def centre_en() -> tuple[float, float]:
    """Easting/northing (EPSG:4545) of the demo centre."""
    return pyproj.Transformer.from_crs(4490, DEMO_CRS, always_xy=True).transform(CENTRE_LON, CENTRE_LAT)


def houses(n: int, seed: int = 0, spacing: float = 40.0, prefix: str = "CQ-YZ") -> list[House]:
    """n houses on a jittered grid around the demo centre (a 1,000-house block spans about 1.3 km)."""
    rng = np.random.default_rng([seed, n])
    east0, north0 = centre_en()
    side = math.ceil(math.sqrt(n))
    out = []
    for i in range(n):
        row, col = divmod(i, side)
        storeys = int(rng.integers(2, 9))
        eave = 3.2 * storeys
        out.append(House(
            id=f"{prefix}-{seed:02d}-{i:05d}", east=east0 + (col - side / 2) * spacing + rng.uniform(-3, 3),
            north=north0 + (row - side / 2) * spacing + rng.uniform(-3, 3), width=float(rng.uniform(12, 24)),
            depth=float(rng.uniform(8, 14)), eave=eave, ridge=eave + float(rng.uniform(2, 4)),
            angle_deg=float(rng.uniform(0, 90)), ground=GROUND_M + float(rng.uniform(-5, 5)), storeys=storeys,
            function=str(rng.choice(["1000", "1010", "2000"]))))
    return out


def write_demo_cim(landing: Path, seed: int = 0) -> dict[str, int]:
    """Write landing/cim/{demo_yuzhong.ifc, demo_yuzhong.city.json, demo_yuzhong.gml}; buildings per file."""
    folder = Path(landing) / "cim"
    folder.mkdir(parents=True, exist_ok=True)
    block = houses(12, seed)
    write_ifc(folder / "demo_yuzhong.ifc", block[:1], seed)
    write_cityjson(folder / "demo_yuzhong.city.json", block[1:6])
    write_citygml(folder / "demo_yuzhong.gml", block[6:])
    return {"demo_yuzhong.ifc": 1, "demo_yuzhong.city.json": 5, "demo_yuzhong.gml": len(block) - 6}


# --- CityJSON 2.0 --------------------------------------------------------------------------------------------
def write_cityjson(path: Path, block: list[House]) -> None:
    scale = 0.001
    translate = np.floor(np.array([[h.east, h.north, h.ground] for h in block]).min(axis=0))
    vertices: list[list[int]] = []
    objects = {}
    for house in block:
        surfaces = []
        for ring in house.polygons():
            start = len(vertices)
            vertices.extend(np.rint((ring - translate) / scale).astype(int).tolist())
            surfaces.append([list(range(start, start + len(ring)))])
        objects[house.id] = {
            "type": "Building",
            "attributes": {"function": house.function, "storeysAboveGround": house.storeys,
                           "measuredHeight": round(house.ridge, 3), "name": f"渝中 {house.id}"},
            "geometry": [{"type": "Solid", "lod": "2", "boundaries": [surfaces]}],
        }
    document = {"type": "CityJSON", "version": "2.0",
                "transform": {"scale": [scale] * 3, "translate": translate.tolist()},
                "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/4545",
                             "title": "OneMap Twin demo buildings, Yuzhong"},
                "CityObjects": objects, "vertices": vertices}
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


# --- CityGML 2.0 ---------------------------------------------------------------------------------------------
def write_citygml(path: Path, block: list[House]) -> None:
    """CityGML 2.0 LoD2: each house a bldg:lod2Solid whose surfaces reference its thematic boundary surfaces."""
    kinds = ["GroundSurface"] + ["WallSurface"] * 4 + ["RoofSurface"] * 2
    with path.open("w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<core:CityModel '
                + " ".join(f'xmlns:{k}="{v}"' for k, v in _NS.items())
                + ' xmlns:xlink="http://www.w3.org/1999/xlink">\n'
                + f'<gml:boundedBy><gml:Envelope srsName="{CITYGML_SRS}" srsDimension="3"/></gml:boundedBy>\n')
        for house in block:
            members, surfaces = [], []
            for k, (kind, ring) in enumerate(zip(kinds, house.polygons(), strict=True)):
                pid = f"{house.id}-p{k}"
                closed = np.vstack([ring, ring[:1]])
                pos = " ".join(f"{v:.3f}" for v in closed.ravel())
                members.append(f'<gml:surfaceMember xlink:href="#{pid}"/>')
                surfaces.append(f"<bldg:boundedBy><bldg:{kind}><bldg:lod2MultiSurface><gml:MultiSurface>"
                                f'<gml:surfaceMember><gml:Polygon gml:id="{pid}"><gml:exterior><gml:LinearRing>'
                                f"<gml:posList>{pos}</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>"
                                f"</gml:surfaceMember></gml:MultiSurface></bldg:lod2MultiSurface></bldg:{kind}>"
                                "</bldg:boundedBy>")
            f.write(f'<core:cityObjectMember><bldg:Building gml:id="{house.id}">'
                    f"<gml:name>渝中 {house.id}</gml:name><bldg:function>{house.function}</bldg:function>"
                    f'<bldg:measuredHeight uom="m">{house.ridge:.3f}</bldg:measuredHeight>'
                    f"<bldg:storeysAboveGround>{house.storeys}</bldg:storeysAboveGround>"
                    "<bldg:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>" + "".join(members)
                    + "</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod2Solid>" + "".join(surfaces)
                    + "</bldg:Building></core:cityObjectMember>\n")
        f.write("</core:CityModel>\n")


# --- IFC4 ----------------------------------------------------------------------------------------------------
def write_ifc(path: Path, block: list[House], seed: int = 0) -> None:
    """IFC4 with one IfcBuilding per house (storeys of four walls and a floor slab), georeferenced by an
    IfcMapConversion to EPSG:4545: the model origin sits at the first house, other houses are placed relative."""
    origin = block[0]
    angle = math.radians(origin.angle_deg)
    f, body, site = ifc_site(
        "OneMap Twin demo BIM", "渝中区 demo site",
        projected_crs={"Name": DEMO_CRS, "Description": "CGCS2000 / 3-degree Gauss-Kruger CM 108E",
                       "VerticalDatum": "Yellow Sea 1985"},
        coordinate_operation={"Eastings": origin.east, "Northings": origin.north, "OrthogonalHeight": origin.ground,
                              "XAxisAbscissa": math.cos(angle), "XAxisOrdinate": math.sin(angle), "Scale": 1.0})
    for house in block:
        ifc_building(f, body, site, house, origin)
    for rel in f.by_type("IfcRelAggregates"):  # the api collects members in sets: fix their order
        rel.RelatedObjects = sorted(rel.RelatedObjects, key=lambda e: e.id())
    for rel in f.by_type("IfcRelContainedInSpatialStructure"):
        rel.RelatedElements = sorted(rel.RelatedElements, key=lambda e: e.id())
    for i, entity in enumerate(f.by_type("IfcRoot")):
        entity.GlobalId = ifcopenshell.guid.compress(uuid.UUID(bytes=hashlib.md5(f"{seed}/{i}".encode()).digest()).hex)
    f.header.file_name.time_stamp = "2026-01-01T00:00:00"
    f.write(str(path))


def ifc_site(project_name: str, site_name: str, projected_crs: dict, coordinate_operation: dict
             ) -> tuple[ifcopenshell.file, ifcopenshell.entity_instance, ifcopenshell.entity_instance]:
    """An IFC4 project in metres with a body context and one site, georeferenced by an IfcMapConversion."""
    f = ifcopenshell.api.project.create_file(version="IFC4")
    project = ifcopenshell.api.root.create_entity(f, ifc_class="IfcProject", name=project_name)
    ifcopenshell.api.unit.assign_unit(f, units=[ifcopenshell.api.unit.add_si_unit(f, unit_type="LENGTHUNIT")])
    model = ifcopenshell.api.context.add_context(f, context_type="Model")
    body = ifcopenshell.api.context.add_context(f, context_type="Model", context_identifier="Body",
                                                target_view="MODEL_VIEW", parent=model)
    ifcopenshell.api.georeference.add_georeferencing(f, name=projected_crs["Name"])
    ifcopenshell.api.georeference.edit_georeferencing(f, projected_crs=projected_crs,
                                                      coordinate_operation=coordinate_operation)
    site = ifcopenshell.api.root.create_entity(f, ifc_class="IfcSite", name=site_name)
    ifcopenshell.api.aggregate.assign_object(f, relating_object=project, products=[site])
    return f, body, site


def ifc_building(f: ifcopenshell.file, body: ifcopenshell.entity_instance, site: ifcopenshell.entity_instance,
                 house: House, origin: House) -> None:
    building = ifcopenshell.api.root.create_entity(f, ifc_class="IfcBuilding", name=f"渝中 {house.id}")
    building.ObjectType = "office"
    ifcopenshell.api.aggregate.assign_object(f, relating_object=site, products=[building])
    a0 = math.radians(origin.angle_deg)  # model axes are the first house's axes
    de, dn = house.east - origin.east, house.north - origin.north
    x, y = de * math.cos(a0) + dn * math.sin(a0), -de * math.sin(a0) + dn * math.cos(a0)
    turn = math.radians(house.angle_deg - origin.angle_deg)
    storey_h = house.eave / house.storeys
    for level in range(house.storeys):
        storey = ifcopenshell.api.root.create_entity(f, ifc_class="IfcBuildingStorey", name=f"{level + 1}F")
        storey.Elevation = level * storey_h
        ifcopenshell.api.aggregate.assign_object(f, relating_object=building, products=[storey])
        z = house.ground - origin.ground + level * storey_h
        slab = ifcopenshell.api.root.create_entity(f, ifc_class="IfcSlab", name=f"{level + 1}F slab")
        outline = [(0.0, 0.0), (house.width, 0.0), (house.width, house.depth), (0.0, house.depth)]
        _place(f, slab, storey, ifcopenshell.api.geometry.add_slab_representation(
            f, context=body, depth=0.2, polyline=outline), x, y, z, turn)
        for k, (dx, dy, length, rot) in enumerate(((0, 0, house.width, 0), (house.width, 0, house.depth, 90),
                                                   (house.width, house.depth, house.width, 180),
                                                   (0, house.depth, house.depth, 270))):
            wall = ifcopenshell.api.root.create_entity(f, ifc_class="IfcWall", name=f"{level + 1}F wall {k + 1}")
            wx = x + dx * math.cos(turn) - dy * math.sin(turn)
            wy = y + dx * math.sin(turn) + dy * math.cos(turn)
            _place(f, wall, storey, ifcopenshell.api.geometry.add_wall_representation(
                f, context=body, length=length, height=storey_h, thickness=0.25), wx, wy, z,
                turn + math.radians(rot))


def _place(f: ifcopenshell.file, product: ifcopenshell.entity_instance, storey: ifcopenshell.entity_instance,
           representation: ifcopenshell.entity_instance, x: float, y: float, z: float, angle: float) -> None:
    matrix = np.eye(4)
    matrix[:2, :2] = [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    matrix[:3, 3] = (x, y, z)
    ifcopenshell.api.geometry.edit_object_placement(f, product=product, matrix=matrix)
    ifcopenshell.api.geometry.assign_representation(f, product=product, representation=representation)
    ifcopenshell.api.spatial.assign_container(f, relating_structure=storey, products=[product])
