"""GLB (binary glTF 2.0) for one tile of buildings: a triangle soup with per-vertex feature ids and a property table.

Written by hand rather than through a glTF library: the container is a JSON chunk and a BIN chunk, and what matters
here (EXT_mesh_features / EXT_structural_metadata objects, 8-byte aligned buffer views for the property table) would
be raw dictionaries in any library anyway. Khronos gltf-validator checks the result in the tests.

Positions are float32 relative to the tile centre, y-up as glTF requires (x = east, y = up, z = -north); 3D Tiles
rotates glTF y-up to z-up before applying the tile transforms. Feature ids are FLOAT (exact below 2^24, and 4-byte
aligned as vertex attributes must be) and index the property table's rows.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

ARRAY_BUFFER = 34962
FLOAT, TRIANGLES = 5126, 4
SCHEMA_ID = "onemap_twin"
BUILDING_CLASS = "building"


@dataclass(frozen=True)
class Column:
    """One property of the building class: `kind` is "STRING", "FLOAT64" or "INT32"; `no_data` marks missing values."""

    name: str
    kind: str
    values: list | np.ndarray
    no_data: str | float | int | None = None
    description: str = ""


def _class_property(column: Column) -> dict:
    prop: dict = {"description": column.description} if column.description else {}
    if column.kind == "STRING":
        prop["type"] = "STRING"
    else:
        prop |= {"type": "SCALAR", "componentType": column.kind}
    if column.no_data is None:
        prop["required"] = True
    else:
        prop["noData"] = column.no_data
    return prop


def metadata_schema(columns: list[Column]) -> dict:
    return {"id": SCHEMA_ID, "classes": {BUILDING_CLASS: {
        "name": "Building", "description": "A building of the lake (silver/buildings), picked by building_id.",
        "properties": {c.name: _class_property(c) for c in columns}}}}


class _Bin:
    """The BIN chunk under construction: views appended 8-byte aligned (property tables need it)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.views: list[dict] = []

    def add(self, data: bytes, target: int | None = None) -> int:
        pad = -self.size % 8
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        view = {"buffer": 0, "byteOffset": self.size, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.parts.append(data)
        self.size += len(data)
        return len(self.views) - 1

    def bytes(self) -> bytes:
        return b"".join(self.parts) + b"\0" * (-self.size % 4)


def _property_values(column: Column, binary: _Bin) -> dict:
    if column.kind == "STRING":
        encoded = [str(v).encode("utf-8") for v in column.values]
        offsets = np.zeros(len(encoded) + 1, dtype="<u4")
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return {"values": binary.add(b"".join(encoded)), "stringOffsets": binary.add(offsets.tobytes()),
                "stringOffsetType": "UINT32"}
    dtype = {"FLOAT64": "<f8", "INT32": "<i4"}[column.kind]
    return {"values": binary.add(np.asarray(column.values, dtype=dtype).tobytes())}


def _has_values(column: Column) -> bool:
    """A property whose every value is missing is left out of the table (glTF forbids empty buffer views)."""
    return column.no_data is None or any(v != column.no_data for v in column.values)


def building_glb(positions: np.ndarray, normals: np.ndarray, feature_ids: np.ndarray, columns: list[Column]) -> bytes:
    """GLB bytes: `positions`/`normals` (n×3, y-up, non-indexed triangles), `feature_ids` (n) into the rows of
    `columns` (one property table, class `building`). Needs at least one triangle."""
    count = len(columns[0].values)
    binary = _Bin()
    pos = np.ascontiguousarray(positions, dtype="<f4")
    accessors = [
        {"bufferView": binary.add(pos.tobytes(), ARRAY_BUFFER), "componentType": FLOAT, "count": len(pos),
         "type": "VEC3", "min": pos.min(axis=0).tolist(),
         "max": pos.max(axis=0).tolist()},
        {"bufferView": binary.add(np.ascontiguousarray(normals, dtype="<f4").tobytes(), ARRAY_BUFFER),
         "componentType": FLOAT, "count": len(pos), "type": "VEC3"},
        {"bufferView": binary.add(np.ascontiguousarray(feature_ids, dtype="<f4").tobytes(), ARRAY_BUFFER),
         "componentType": FLOAT, "count": len(pos), "type": "SCALAR"},
    ]
    table = {"name": "buildings", "class": BUILDING_CLASS, "count": count,
             "properties": {c.name: _property_values(c, binary) for c in columns if _has_values(c)}}
    primitive = {"attributes": {"POSITION": 0, "NORMAL": 1, "_FEATURE_ID_0": 2}, "mode": TRIANGLES, "material": 0,
                 "extensions": {"EXT_mesh_features": {"featureIds": [
                     {"featureCount": count, "attribute": 0, "propertyTable": 0, "label": "building"}]}}}
    blob = binary.bytes()
    doc = {
        "asset": {"version": "2.0", "generator": "OneMap Twin tiles"},
        "extensionsUsed": ["EXT_mesh_features", "EXT_structural_metadata"],
        "extensions": {"EXT_structural_metadata": {"schema": metadata_schema(columns), "propertyTables": [table]}},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [primitive]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [0.86, 0.84, 0.8, 1.0], "metallicFactor": 0.0,
                                                "roughnessFactor": 0.85}, "doubleSided": True}],
        "accessors": accessors, "bufferViews": binary.views, "buffers": [{"byteLength": len(blob)}],
    }
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total), struct.pack("<I4s", len(text), b"JSON"), text,
                     struct.pack("<I4s", len(blob), b"BIN\0"), blob])
