"""CityGML 1.0, 2.0 and 3.0 buildings (lxml): one row per bldg:Building, its BuildingParts merged into its mesh.

The version comes from the building module's namespace (`.../citygml/building/<1.0|2.0|3.0>`). Geometry: every
polygon under the building's `lod<N>…` properties (solids, multi-surfaces, thematic boundary surfaces, openings;
xlink:href references resolved, shared polygons counted once) of the highest LoD among 1–3 (else 4, else 0).
CRS: the first `srsName` in the file (envelope or geometry), including compound URNs and AdV names; a file without
one needs the contract's `crs:`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from lxml import etree

from lake.errors import FeedReadError
from lake.meshes import Mesh, triangulate_polygons
from lake.readers.cim import BuildingModel, as_float, as_int, buildings_batch, frame_for
from lake.readers.raw_batch import RawBatch

if TYPE_CHECKING:
    from lake.contracts import FeedContract

_BLDG_NS = re.compile(r"^http://www\.opengis\.net/citygml/building/(\d\.\d)$")
_LOD_PROPERTY = re.compile(r"lod(\d)")  # matched at the local name's start
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_SURFACES = {"Polygon", "Triangle", "Rectangle"}
_LOD_PREFERENCE = (3, 2, 1, 4, 0)


def read_citygml(source: str, contract: FeedContract) -> RawBatch:
    path = Path(source)
    try:
        tree = etree.parse(str(path), etree.XMLParser(huge_tree=True, remove_comments=True))
    except (etree.XMLSyntaxError, OSError) as exc:
        raise FeedReadError(source, f"not readable as CityGML (XML): {exc}; the file may be cut off or damaged: "
                                    "re-deliver the whole file") from exc
    root = tree.getroot()
    buildings = [e for e in root.iter("{*}Building") if _BLDG_NS.match(etree.QName(e).namespace or "")]
    if not buildings:
        raise FeedReadError(source, "no bldg:Building (CityGML 1.0/2.0/3.0 building module) in the file")
    version = _BLDG_NS.match(etree.QName(buildings[0]).namespace).group(1)
    srs = next((e.get("srsName") for e in root.iter() if isinstance(e.tag, str) and e.get("srsName")), None)
    frame = frame_for(source, srs, contract)
    gml_ids = _IdIndex(root)
    models = [_building(e, version, gml_ids, source) for e in buildings]
    return buildings_batch(source, f"CityGML {version}", models, frame, contract)


class _IdIndex:
    """gml:id → element, built on the first xlink:href (many files have none)."""

    def __init__(self, root: etree._Element) -> None:
        self._root = root
        self._ids: dict[str, etree._Element] | None = None

    def get(self, ref: str) -> etree._Element | None:
        if self._ids is None:
            self._ids = {}
            for e in self._root.iter():
                if isinstance(e.tag, str) and (gid := _gml_id(e)):
                    self._ids[gid] = e
        return self._ids.get(ref.lstrip("#"))


def _gml_id(element: etree._Element) -> str | None:
    return next((v for k, v in element.attrib.items() if k.endswith("}id") and "/gml" in k), None)


def _building(element: etree._Element, version: str, ids: _IdIndex, source: str) -> BuildingModel:
    gid = _gml_id(element)
    if not gid:
        raise FeedReadError(source, f"a bldg:Building at line {element.sourceline} has no gml:id")
    by_lod = _polygons_by_lod(element, ids)
    lod = next((n for n in _LOD_PREFERENCE if by_lod.get(n)), None)
    mesh = triangulate_polygons([_rings(p, source) for p in by_lod[lod]]) if lod is not None else Mesh.empty()
    return BuildingModel(
        id=gid, mesh=mesh, lod=f"LoD{lod}" if lod is not None else "none", source_format=f"CityGML {version}",
        name=_text(element, "{*}name"), function=_text(element, "{*}function"),
        usage=_text(element, "{*}usage"), storeys=as_int(_text(element, "{*}storeysAboveGround")),
        height=as_float(_text(element, "{*}measuredHeight") or _height_v3(element)),
    )


def _polygons_by_lod(building: etree._Element, ids: _IdIndex) -> dict[int, list[etree._Element]]:
    found: dict[int, dict[int, etree._Element]] = defaultdict(dict)
    for prop in building.iter():
        tag = prop.tag
        if not isinstance(tag, str) or not (m := _LOD_PROPERTY.match(tag, tag.find("}") + 1)):
            continue
        for polygon in _surfaces(prop, ids):
            found[int(m.group(1))][id(polygon)] = polygon
    return {lod: list(polys.values()) for lod, polys in found.items()}


def _surfaces(element: etree._Element, ids: _IdIndex, depth: int = 0) -> list[etree._Element]:
    """Polygons under an element, following xlink:href (surfaceMember references into thematic surfaces)."""
    out = []
    for e in element.iter():
        if not isinstance(e.tag, str):
            continue
        if e.tag[e.tag.find("}") + 1:] in _SURFACES:
            out.append(e)
        elif (href := e.get(_XLINK_HREF)) and depth < 4 and (target := ids.get(href)) is not None:
            out.extend(_surfaces(target, ids, depth + 1))
    return out


def _rings(polygon: etree._Element, source: str) -> list[np.ndarray]:
    rings = [_coordinates(ring, source) for ring in polygon.iter("{*}LinearRing")]
    return rings if rings and polygon.tag.endswith("}Polygon") else [_coordinates(polygon, source)]


def _coordinates(ring: etree._Element, source: str) -> np.ndarray:
    """A ring's points from gml:posList, gml:pos or (GML 2) gml:coordinates, as n×3 (z = 0 when 2D)."""
    try:
        if (pos_list := ring.find(".//{*}posList")) is not None:
            values, dim = np.array(pos_list.text.split(), dtype=np.float64), _dimension(pos_list)
        elif (positions := ring.findall(".//{*}pos")):
            values = np.array([v for p in positions for v in p.text.split()], dtype=np.float64)
            dim = len(positions[0].text.split())
        elif (coordinates := ring.find(".//{*}coordinates")) is not None:
            tuples = [t.split(",") for t in coordinates.text.split()]
            values, dim = np.array([v for t in tuples for v in t], dtype=np.float64), len(tuples[0])
        else:
            return np.zeros((0, 3))
    except (ValueError, AttributeError) as exc:
        raise FeedReadError(source, f"line {ring.sourceline}: unreadable coordinates ({exc})") from exc
    if dim not in (2, 3) or len(values) % dim:
        raise FeedReadError(source, f"line {ring.sourceline}: {len(values)} ordinates do not make {dim}D points")
    points = values.reshape(-1, dim)
    return points if dim == 3 else np.column_stack([points, np.zeros(len(points))])


def _dimension(element: etree._Element) -> int:
    for e in (element, *element.iterancestors()):
        if e.get("srsDimension"):
            return int(e.get("srsDimension"))
    return 3


def _text(element: etree._Element, tag: str) -> str | None:
    child = element.find(tag)
    return child.text.strip() if child is not None and child.text and child.text.strip() else None


def _height_v3(element: etree._Element) -> str | None:
    """CityGML 3.0: con:height/con:Height/con:value (the building's measured height)."""
    value = element.find("{*}height/{*}Height/{*}value")
    return value.text.strip() if value is not None and value.text else None
