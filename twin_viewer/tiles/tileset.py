"""The buildings tileset: a quadtree over building anchors, one GLB per leaf, tileset.json (3D Tiles 1.1).

Leaves hold at most LEAF_BUILDINGS buildings and span at most LEAF_MAX_SIDE_M; inner tiles carry no content,
only bounding volumes and geometric errors, so CesiumJS fetches a leaf only when the camera is near enough for its
buildings to matter (100,000 buildings load progressively). The root carries the ENU frame at the region's centre; each leaf translates to the
centre of its own content, so GLB positions are float32 offsets of at most a few kilometres.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from twin_viewer.tiles.geometry import Frame, Soup
from twin_viewer.tiles.glb import Column, building_glb

LEAF_BUILDINGS = 1024
LEAF_MAX_SIDE_M = 8192.0  # float32 offsets within ±4 km of a leaf's centre are exact to half a millimetre
MAX_DEPTH = 20
BOX_MARGIN_M = 0.01  # bounding boxes are widened by this, so float32 rounding of positions stays inside
# Geometric error of a leaf's parent: the error of drawing no buildings at all is about a building's size; with
# CesiumJS's default screen-space error (16 px) leaves load within about 8 km of the camera. It doubles per level up.
LEAF_PARENT_ERROR_M = 160.0
MIN_HALF_AXIS_M = 0.5


@dataclass
class Node:
    level: int
    x: int
    y: int
    buildings: np.ndarray  # rows of the soup's attributes (leaves only)
    children: list[Node] = field(default_factory=list)


def quadtree(anchors: np.ndarray, rows: np.ndarray, box: tuple[float, float, float, float], level: int = 0,
             x: int = 0, y: int = 0) -> Node:
    """Split the square `box` (west, south, east, north in root-frame metres) until a cell has few buildings and
    is small enough for float32 positions."""
    small = box[2] - box[0] <= LEAF_MAX_SIDE_M
    if (len(rows) <= LEAF_BUILDINGS and small) or level >= MAX_DEPTH:
        return Node(level, x, y, rows)
    w, s, e, n = box
    cx, cy = (w + e) / 2, (s + n) / 2
    east = anchors[rows, 0] >= cx
    north = anchors[rows, 1] >= cy
    node = Node(level, x, y, rows[:0])
    for qx in (0, 1):
        for qy in (0, 1):
            part = rows[(east == bool(qx)) & (north == bool(qy))]
            if len(part):
                sub = (cx if qx else w, cy if qy else s, e if qx else cx, n if qy else cy)
                node.children.append(quadtree(anchors, part, sub, level + 1, 2 * x + qx, 2 * y + qy))
    return node


def _box(lo: np.ndarray, hi: np.ndarray, centre: np.ndarray) -> list[float]:
    half = np.maximum((hi - lo) / 2 + BOX_MARGIN_M, MIN_HALF_AXIS_M)
    mid = (lo + hi) / 2 - centre
    return [*mid.tolist(), half[0], 0.0, 0.0, 0.0, half[1], 0.0, 0.0, 0.0, half[2]]


def _columns(attributes: pa.Table, rows: np.ndarray) -> list[Column]:
    part = attributes.take(pa.array(rows)).to_pydict()
    text = {k: ["" if v is None else str(v) for v in part[k]]
            for k in ("building_id", "name", "function", "district_code", "geometry_source")}
    return [
        Column("building_id", "STRING", text["building_id"], description="Building id in silver/buildings."),
        Column("name", "STRING", text["name"], no_data=""),
        Column("function", "STRING", text["function"], no_data=""),
        Column("district_code", "STRING", text["district_code"], no_data=""),
        Column("height_m", "FLOAT64", [-1.0 if v is None or math.isnan(v) else v for v in part["height_m"]],
               no_data=-1.0, description="Height in metres (for extruded buildings: the extrusion height)."),
        Column("storeys", "INT32", [-1 if v is None else v for v in part["storeys"]], no_data=-1),
        Column("geometry_source", "STRING", text["geometry_source"],
               description="mesh (IFC/CityGML/CityJSON) or extruded (footprint by height)."),
    ]


class _Writer:
    """Writes leaves' GLBs while building the tile tree; triangles are grouped by leaf once, up front."""

    def __init__(self, soup: Soup, folder: Path, leaves: list[Node]) -> None:
        self.soup = soup
        self.folder = folder
        leaf_of = np.zeros(len(soup.anchors), dtype=np.int64)
        for i, leaf in enumerate(leaves):
            leaf_of[leaf.buildings] = i
        tri_leaf = leaf_of[soup.owner]
        order = np.lexsort((soup.owner, tri_leaf))
        bounds = np.searchsorted(tri_leaf[order], np.arange(len(leaves) + 1))
        self.slices = {id(leaf): order[bounds[i]:bounds[i + 1]] for i, leaf in enumerate(leaves)}
        self.content = 0

    def tile(self, node: Node) -> tuple[dict, np.ndarray, np.ndarray] | None:
        """The tile JSON and its content's root-frame bounds (lo, hi); None for a leaf without triangles."""
        if node.children:
            parts = [t for t in (self.tile(c) for c in node.children) if t is not None]
            if not parts:
                return None
            lo = np.min([p[1] for p in parts], axis=0)
            hi = np.max([p[2] for p in parts], axis=0)
            error = max(LEAF_PARENT_ERROR_M, 2 * max(p[0]["geometricError"] for p in parts))
            return ({"boundingVolume": {"box": _box(lo, hi, np.zeros(3))}, "geometricError": error,
                     "children": [p[0] for p in parts]}, lo, hi)
        return self._leaf(node)

    def _leaf(self, node: Node) -> tuple[dict, np.ndarray, np.ndarray] | None:
        rows = np.sort(node.buildings)
        take = self.slices[id(node)]
        if len(take) == 0:
            return None
        tris = self.soup.triangles[take]
        feature = np.searchsorted(rows, self.soup.owner[take])  # row within this tile's property table
        points = tris.reshape(-1, 3)
        lo, hi = points.min(axis=0), points.max(axis=0)
        centre = (lo + hi) / 2
        local = points - centre
        normal = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        normals = np.repeat(normal, 3, axis=0)
        y_up = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)  # (e, n, u) -> (e, u, -n)
        uri = f"content/{node.level}_{node.x}_{node.y}.glb"
        (self.folder / uri).write_bytes(building_glb(local @ y_up.T, normals @ y_up.T, np.repeat(feature, 3),
                                                     _columns(self.soup.attributes, rows)))
        self.content += 1
        translation = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, *centre.tolist(), 1.0]
        return ({"transform": translation, "boundingVolume": {"box": _box(lo, hi, centre)}, "geometricError": 0.0,
                 "content": {"uri": uri}}, lo, hi)


def write_tileset(soup: Soup, frame: Frame, folder: Path) -> dict:
    """Write tileset.json and content/*.glb into `folder`; returns counts for the manifest."""
    (folder / "content").mkdir(parents=True, exist_ok=True)
    anchors = soup.anchors
    rows = np.arange(len(anchors))
    if len(rows):
        lo, hi = anchors.min(axis=0), anchors.max(axis=0)
        side = float(max(hi - lo)) / 2 + 1.0
        mid = (lo + hi) / 2
        box = (mid[0] - side, mid[1] - side, mid[0] + side, mid[1] + side)
    else:
        box = (-1.0, -1.0, 1.0, 1.0)
    tree = quadtree(anchors, rows, box)
    writer = _Writer(soup, folder, _leaves(tree))
    root = writer.tile(tree)
    if root is None:  # no buildings: an empty root the viewer can still load
        root = ({"boundingVolume": {"box": [0.0, 0.0, 0.0, 1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]}, "geometricError": 0.0},
                np.zeros(3), np.zeros(3))
    tile = root[0]
    tile["transform"] = _compose(frame.matrix(), tile.get("transform"))
    tile["refine"] = "ADD"
    error = max(LEAF_PARENT_ERROR_M, 2 * tile["geometricError"])  # the root itself is refined at this error
    tileset = {"asset": {"version": "1.1", "generator": "OneMap Twin tiles"}, "geometricError": error, "root": tile}
    (folder / "tileset.json").write_text(json.dumps(tileset, separators=(",", ":")), encoding="utf-8")
    return {"tiles": writer.content}


def _leaves(node: Node) -> list[Node]:
    return [node] if not node.children else [leaf for child in node.children for leaf in _leaves(child)]


def _compose(frame: np.ndarray, transform: list[float] | None) -> list[float]:
    """The root's transform (column-major): the ENU frame, times the leaf translation when the root is a leaf."""
    m = frame if transform is None else frame @ np.array(transform).reshape(4, 4).T
    return m.T.ravel().tolist()
