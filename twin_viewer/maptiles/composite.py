"""One tile of several map layers drawn bottom to top: imagery, parcels, control lines, conflicts.

The page shows its visible map layers as ONE Cesium imagery layer: in software WebGL each imagery layer costs a
texture per globe tile and a texture lookup per pixel in every frame, and the first view waits for a chain of
frames (measured: the four layers were about a third of a frame). Each layer's own tile comes from its module and
cache (imagery.py, overlays.py); the composite is cached beside them under a key naming the layers' own keys.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from twin_viewer.maptiles import overlays, render, tilecache
from twin_viewer.maptiles.errors import UnknownLayerError
from twin_viewer.maptiles.imagery import imagery_key, imagery_tile
from twin_viewer.maptiles.lakestate import LakeState, current_state
from twin_viewer.maptiles.overlays import Districts
from twin_viewer.maptiles.tilemath import check_tile

STACK = ("imagery", "parcels", "control_lines", "conflicts")  # drawing order, bottom first
LayerDistricts = Mapping[str, Districts]  # per layer, only these districts' features (a department's grants)


def _layer_tile(layer: str, z: int, x: int, y: int, year: int | None, districts: Districts) -> bytes | None:
    """The layer's own tile, None where it has nothing."""
    body = imagery_tile(z, x, y) if layer == "imagery" else \
        overlays.overlay_tile(layer, z, x, y, year=year, districts=districts)
    return None if body == render.empty_png() else body


def _key(layers: list[str], year: int | None, state: LakeState, districts: LayerDistricts) -> str:
    """Starts with the gold build id (so tilecache.prune_stale drops older builds), then the layers' own keys."""
    keys = [imagery_key(state) if layer == "imagery" else
            overlays.source(layer, year, state, districts.get(layer)).key for layer in layers]
    return f"{state.build_id}-{hashlib.sha1('/'.join(keys).encode()).hexdigest()[:12]}"


def cache_folder(layers: list[str], year: int | None, state: LakeState, districts: LayerDistricts | None = None) \
        -> Path:
    """Where map_tile keeps the composited tiles of `layers` (in STACK order) for `year`: one folder per build
    and layer versions (and district restrictions), so other years and older builds sit in folders beside it."""
    return state.cache_dir / "composite" / ",".join(layers) / _key(layers, year, state, districts or {})


def _composite(tiles: list[bytes]) -> bytes:
    image = Image.open(io.BytesIO(tiles[0])).convert("RGBA")
    for body in tiles[1:]:
        image.alpha_composite(Image.open(io.BytesIO(body)).convert("RGBA"))
    return render.encode_png(np.asarray(image))


def map_tile(layers: Sequence[str], z: int, x: int, y: int, year: int | None = None,
             districts: LayerDistricts | None = None) -> bytes:
    """Transparent 256×256 PNG of `layers` (any of STACK, drawn in STACK's order) at an XYZ Web-Mercator tile;
    `year` is the parcels' survey year, `districts` restricts layers to some districts' features. A tile where only
    one layer has something is that layer's own tile."""
    check_tile(z, x, y)
    unknown = [layer for layer in layers if layer not in STACK]
    if unknown or not layers:
        raise UnknownLayerError(f"no map layer {','.join(unknown)!r}; layers: {', '.join(STACK)}")
    wanted = [layer for layer in STACK if layer in layers]
    districts = districts or {}
    state = current_state()
    folder = cache_folder(wanted, year, state, districts)
    path = tilecache.tile_path(folder, z, x, y)
    body = tilecache.read(path)
    if body is not None:
        return body
    tiles = [t for t in (_layer_tile(layer, z, x, y, year, districts.get(layer)) for layer in wanted)
             if t is not None]
    if len(tiles) < 2:
        return tiles[0] if tiles else render.empty_png()
    body = _composite(tiles)
    if not folder.exists():
        tilecache.prune_stale(folder.parent, str(state.build_id))
    tilecache.write(path, body)
    return body
