"""Paint overlay tiles: polygons → a category raster (rasterio.features.rasterize) → RGBA by lookup → PNG."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import rasterio.features
import shapely
from PIL import Image
from affine import Affine

from twin_viewer.maptiles.styles import LayerStyle
from twin_viewer.maptiles.tilemath import TILE_SIZE

HATCH_SPACING = 8  # pixels between the diagonal hatch lines of hatched layers (conflicts)


def _tile_transform(bounds: tuple[float, float, float, float]) -> Affine:
    return Affine((bounds[2] - bounds[0]) / TILE_SIZE, 0, bounds[0], 0, -(bounds[3] - bounds[1]) / TILE_SIZE, bounds[3])


def rasterize(geoms: np.ndarray, categories: np.ndarray, bounds: tuple[float, float, float, float],
              all_touched: bool = False) -> np.ndarray:
    """(256, 256) uint8 categories of `geoms` over the tile `bounds` (metres); later features paint over earlier."""
    out = np.zeros((TILE_SIZE, TILE_SIZE), np.uint8)
    if len(geoms):
        rasterio.features.rasterize(zip(geoms, categories.tolist(), strict=True), out=out,
                                    transform=_tile_transform(bounds), all_touched=all_touched)
    return out


def outlines(geoms: np.ndarray, categories: np.ndarray, bounds: tuple[float, float, float, float],
             width: int = 1) -> np.ndarray:
    """Categories along the polygons' boundaries (`width` pixels wide)."""
    lines = rasterize(shapely.boundary(geoms), categories, bounds, all_touched=True)
    for _ in range(width - 1):  # thicken by one pixel right and down per step
        grown = lines.copy()
        grown[:, 1:] = np.where(grown[:, 1:] == 0, lines[:, :-1], grown[:, 1:])
        grown[1:, :] = np.where(grown[1:, :] == 0, lines[:-1, :], grown[1:, :])
        lines = grown
    return lines


def colour(fill: np.ndarray, style: LayerStyle, lines: np.ndarray | None = None,
           lines_over_all: bool = True) -> np.ndarray:
    """RGBA of a category raster: fill colours, the hatch of hatched styles, then outlines on top (all of them,
    or with `lines_over_all=False` only where they are not inside a feature of a higher category)."""
    rgba = style.fill[fill]
    if style.hatch:
        i, j = np.indices(fill.shape)
        hatch = (((i + j) % HATCH_SPACING) < 2) & (fill > 0)
        rgba[hatch] = style.line[fill[hatch]]
    if lines is not None:
        drawn = (lines > 0) if lines_over_all else (lines > 0) & (lines >= fill)
        rgba[drawn] = style.line[lines[drawn]]
    return rgba


def encode_png(rgba: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG", compress_level=6)
    return out.getvalue()


@cache
def empty_png() -> bytes:
    """A fully transparent 256×256 tile (served wherever an overlay has nothing)."""
    return encode_png(np.zeros((TILE_SIZE, TILE_SIZE, 4), np.uint8))
