"""Paint overlay tiles: polygons → a category raster (Pillow, rasterio for polygons with holes) → RGBA → PNG."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import rasterio.features
import shapely
from PIL import Image, ImageDraw
from rasterio.transform import Affine

from twin_viewer.maptiles.styles import LayerStyle
from twin_viewer.maptiles.tilemath import TILE_SIZE

HATCH_SPACING = 8  # pixels between the diagonal hatch lines of hatched layers (conflicts)


def tile_transform(bounds: tuple[float, float, float, float], size: int = TILE_SIZE) -> Affine:
    """Pixel → metres of a square tile over `bounds`."""
    return Affine((bounds[2] - bounds[0]) / size, 0, bounds[0], 0, -(bounds[3] - bounds[1]) / size, bounds[3])


def _pixel_rings(rings: np.ndarray, transform: Affine) -> tuple[np.ndarray, list[int], list[int]]:
    """Vertices of each ring in pixel space (pixel i spans [i, i+1)) and each ring's slice of them.

    Pillow paints the pixels a polygon reaches into (it rounds edges down), so a feature smaller than a pixel
    still marks its pixel, and two parcels sharing an edge split the edge pixels by drawing order.
    """
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    inv = ~transform
    xy = np.column_stack([coords[:, 0] * inv.a + inv.c, coords[:, 1] * inv.e + inv.f])
    ends = np.cumsum(np.bincount(ring_of, minlength=len(rings)))
    return xy, np.concatenate([[0], ends[:-1]]).tolist(), ends.tolist()


def rasterize(geoms: np.ndarray, categories: np.ndarray, transform: Affine, shape: tuple[int, int],
              all_touched: bool = False) -> np.ndarray:
    """uint8 categories of the polygons `geoms` on a pixel grid; where features overlap the higher category wins.

    Polygons without holes (nearly all parcels) are filled by Pillow from vertex arrays in pixel space, which is
    about five times faster than rasterio.features.rasterize (whose per-geometry GeoJSON conversion dominates);
    polygons with holes go through rasterio, which handles the holes. `all_touched` also paints edge pixels.
    """
    out = np.zeros(shape, np.uint8)
    if not len(geoms):
        return out
    parts, owner = shapely.get_parts(geoms, return_index=True)
    cats = np.asarray(categories, np.uint8)[owner]
    holed = shapely.get_num_interior_rings(parts) > 0
    image = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(image)
    order = np.flatnonzero(~holed)
    order = order[np.argsort(cats[order], kind="stable")]  # higher categories drawn last
    xy, starts, ends = _pixel_rings(shapely.get_exterior_ring(parts[order]), transform)
    for start, end, category in zip(starts, ends, cats[order].tolist(), strict=True):
        if end - start >= 3:
            draw.polygon(xy[start:end].ravel().tolist(), fill=category, outline=category if all_touched else None)
    out[:] = np.asarray(image)
    if holed.any():
        rest = np.zeros(shape, np.uint8)
        rasterio.features.rasterize(zip(parts[holed], cats[holed].tolist(), strict=True), out=rest,
                                    transform=transform, all_touched=all_touched)
        np.maximum(out, rest, out=out)
    return out


def outlines(geoms: np.ndarray, categories: np.ndarray, transform: Affine, shape: tuple[int, int],
             width: int = 1) -> np.ndarray:
    """Categories along every ring of the polygons (`width` pixels wide), higher categories drawn last."""
    image = Image.new("L", (shape[1], shape[0]), 0)
    if len(geoms):
        parts, owner = shapely.get_parts(geoms, return_index=True)
        rings, ring_owner = shapely.get_rings(parts, return_index=True)
        cats = np.asarray(categories, np.uint8)[owner][ring_owner]
        order = np.argsort(cats, kind="stable")
        xy, starts, ends = _pixel_rings(rings[order], transform)
        draw = ImageDraw.Draw(image)
        for start, end, category in zip(starts, ends, cats[order].tolist(), strict=True):
            if end - start >= 2:
                draw.line(xy[start:end].ravel().tolist(), fill=category, width=width)
    return np.asarray(image).copy()


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
