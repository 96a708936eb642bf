"""CityJSON 1.1 and 2.0 buildings: one row per Building, its BuildingParts (children) merged into its mesh.

The file is validated offline against the CityJSON schemas of its version in `$ONEMAP_SCHEMAS/cityjson` (default
`<repo>/../shared/schemas`, every $ref resolved locally); without the schemas (a fresh clone) validation is
skipped with a logged warning.
Vertices are integers × `transform.scale` + `transform.translate` (float64). Each object contributes its geometry
of the highest LoD; GeometryInstance (templates) is not expanded. CRS from `metadata.referenceSystem`; a file
without one needs the contract's `crs:`.
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import numpy as np
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from lake.errors import FeedReadError
from lake.meshes import triangulate_polygons
from lake.readers.cim import BuildingModel, as_float, as_int, buildings_batch, frame_for
from lake.readers.raw_batch import RawBatch
from lake.settings import REPO_ROOT

if TYPE_CHECKING:
    from lake.contracts import FeedContract

log = logging.getLogger(__name__)
_SCHEMA_VERSIONS = {"1.1": "1.1.3", "2.0": "2.0.2"}
_PRIMITIVES = ("MultiPoint", "MultiLineString", "MultiSurface", "CompositeSurface", "Solid", "MultiSolid",
               "CompositeSolid")


def read_cityjson(source: str, contract: FeedContract) -> RawBatch:
    try:
        document = json.loads(Path(source).read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedReadError(source, f"not valid JSON ({exc}): the file is cut off or damaged; re-deliver the "
                                    "whole file") from exc
    if not isinstance(document, dict) or document.get("type") != "CityJSON":
        raise FeedReadError(source, 'not a CityJSON file (no top-level "type": "CityJSON")')
    version = str(document.get("version"))
    _validate(source, document, version)
    objects: dict[str, Any] = document.get("CityObjects") or {}
    buildings = [oid for oid, o in objects.items() if o.get("type") == "Building"]
    if not buildings:
        raise FeedReadError(source, f"no Building among its {len(objects)} CityObjects: nothing to ingest")
    frame = frame_for(source, (document.get("metadata") or {}).get("referenceSystem"), contract)
    try:
        vertices = _vertices(document)
        models = [_building(oid, objects, vertices, version) for oid in buildings]
    except (IndexError, ValueError, TypeError, KeyError) as exc:  # schema-less runs: malformed geometry
        raise FeedReadError(source, f"malformed vertices or geometry boundaries: {exc!r}") from exc
    return buildings_batch(source, f"CityJSON {version}", models, frame, contract)


def _validate(source: str, document: dict[str, Any], version: str) -> None:
    """Schema-validate the document in parts: the frame (CityObjects emptied), each object against its own type's
    schema (geometry taken out), each geometry against its primitive's schema. The whole schema's oneOf over ~30
    object types re-validates every object and geometry per type (minutes for a few thousand buildings); split,
    the only rule not re-checked is which geometry types each object type allows."""
    if version not in _SCHEMA_VERSIONS:
        raise FeedReadError(source, f"CityJSON version {version!r} is not supported; supported: 1.1, 2.0")
    schemas = _schemas(_SCHEMA_VERSIONS[version])
    if schemas is None:
        return
    objects = document.get("CityObjects")
    _raise_first(source, version, schemas.validator("cityjson.schema.json").iter_errors(
        {**document, "CityObjects": {}}), ())
    if not isinstance(objects, dict):
        return
    for oid, obj in objects.items():
        kind = obj.get("type") if isinstance(obj, dict) else None
        where = ("CityObjects", oid)
        if not isinstance(kind, str) or not (kind.startswith("+") or kind in schemas.object_types):
            raise FeedReadError(source, f"not valid CityJSON {version} (schema) at CityObjects/{oid}/type: "
                                        f"unknown CityObject type {kind!r}")
        definition = "ExtensionObject" if kind.startswith("+") else kind
        _raise_first(source, version, schemas.validator(f"cityobjects.schema.json#/{definition}").iter_errors(
            {**obj, "geometry": []}), where)
        for i, geometry in enumerate(obj.get("geometry") or []):
            gkind = geometry.get("type") if isinstance(geometry, dict) else None
            if gkind in _PRIMITIVES:
                _raise_first(source, version, schemas.validator(f"geomprimitives.schema.json#/{gkind}").iter_errors(
                    geometry), (*where, "geometry", i))
            elif gkind != "GeometryInstance":
                raise FeedReadError(source, f"not valid CityJSON {version} (schema) at CityObjects/{oid}/geometry/"
                                            f"{i}: unknown geometry type {gkind!r}")


def _raise_first(source: str, version: str, errors: Any, prefix: tuple[Any, ...]) -> None:
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        where = "/".join(map(str, (*prefix, *error.absolute_path))) or "(root)"
        raise FeedReadError(source, f"not valid CityJSON {version} (schema) at {where}: {error.message[:300]}")


class _Schemas:
    """The split CityJSON schemas of one version, every $ref resolved from the local files."""

    def __init__(self, folder: Path) -> None:
        schemas = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.schema.json")
                   if not p.name.endswith(".min.schema.json")]
        self._registry = Registry().with_resources((s["$id"], Resource.from_contents(s, DRAFT7)) for s in schemas)
        self._base = f"https://www.cityjson.org/schemas/{folder.name}/"
        objects = next(s for s in schemas if s["$id"].endswith("/cityobjects.schema.json"))
        self.object_types = {k for k in objects if not k.startswith(("$", "_")) and k != "title"}
        self._validators: dict[str, Any] = {}

    def validator(self, ref: str) -> Any:
        if ref not in self._validators:
            self._validators[ref] = jsonschema.Draft7Validator({"$ref": self._base + ref}, registry=self._registry)
        return self._validators[ref]


@lru_cache(maxsize=4)
def _schemas(schema_version: str) -> _Schemas | None:
    folder = Path(os.environ.get("ONEMAP_SCHEMAS", REPO_ROOT.parent / "shared" / "schemas")) / "cityjson"
    if not (folder / schema_version).is_dir():
        log.warning("CityJSON schemas not found in %s: schema validation skipped (set ONEMAP_SCHEMAS)", folder)
        return None
    return _Schemas(folder / schema_version)


def _vertices(document: dict[str, Any]) -> np.ndarray:
    vertices = np.asarray(document.get("vertices") or np.zeros((0, 3)), dtype=np.float64).reshape(-1, 3)
    transform = document.get("transform")
    if transform:
        vertices = vertices * np.asarray(transform["scale"], dtype=np.float64) + np.asarray(transform["translate"])
    return vertices


def _building(oid: str, objects: dict[str, Any], vertices: np.ndarray, version: str) -> BuildingModel:
    obj = objects[oid]
    members = [obj, *(objects[c] for c in obj.get("children", []) if objects.get(c, {}).get("type") == "BuildingPart")]
    polygons, lods = [], []
    for member in members:
        geometry = _highest_lod(member.get("geometry") or [])
        if geometry is not None:
            lods.append(str(geometry.get("lod")))
            polygons.extend([vertices[ring] for ring in surface] for surface in _surfaces(geometry))
    attributes = obj.get("attributes") or {}
    return BuildingModel(
        id=oid, mesh=triangulate_polygons(polygons), lod=f"LoD{max(lods, key=float)}" if lods else "none",
        source_format=f"CityJSON {version}", name=_str(attributes.get("name")),
        function=_str(attributes.get("function")), usage=_str(attributes.get("usage")),
        storeys=as_int(attributes.get("storeysAboveGround")), height=as_float(attributes.get("measuredHeight")),
    )


def _highest_lod(geometries: list[dict[str, Any]]) -> dict[str, Any] | None:
    usable = [g for g in geometries if g.get("type") != "GeometryInstance" and g.get("lod") is not None]
    return max(usable, key=lambda g: float(g["lod"]), default=None)


def _surfaces(geometry: dict[str, Any]) -> list[list[list[int]]]:
    """Every surface (a list of rings of vertex indices) of a geometry, whatever its nesting."""
    boundaries, kind = geometry.get("boundaries") or [], geometry["type"]
    if kind in ("MultiSurface", "CompositeSurface"):
        return boundaries
    if kind == "Solid":
        return [s for shell in boundaries for s in shell]
    if kind in ("MultiSolid", "CompositeSolid"):
        return [s for solid in boundaries for shell in solid for s in shell]
    return []


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
