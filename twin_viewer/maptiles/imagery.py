"""Imagery tiles: a mosaic of the latest usable STAC scenes, read from their COG assets with rio-tiler.

Usable scene: an item with a cloud cover under CLOUD_COVER_MAX (items without one, such as DEMs, are not
imagery) and a `visual` asset (STAC's role for a display-ready 8-bit true-colour image; `data` assets such as
elevation are left out). Per tile the scenes whose footprint and asset extent meet the tile are mosaicked newest
first: rio-tiler reads each COG through a WarpedVRT into EPSG:3857 from the overview level nearest the tile's
resolution, and the mosaic stops as soon as every pixel is filled. A scene whose asset is missing or corrupt
is skipped with a warning naming its href; the tile renders from the others.

rio-tiler rather than our own WarpedVRT code: it already does the overview choice, masks (nodata, alpha,
outside the raster), boundless reads at raster edges, first-valid-pixel mosaicking and PNG encoding with alpha,
which is what this module would otherwise re-implement.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.warp import transform_bounds
from rio_tiler.errors import EmptyMosaicError, TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.mosaic import mosaic_reader

from lake import delta_io
from lake.registry import STAC_ASSETS, STAC_ITEMS
from twin_viewer.maptiles import tilecache
from twin_viewer.maptiles.lakestate import LakeState, current_state
from twin_viewer.maptiles.tilemath import check_tile, tile_lonlat_bounds

log = logging.getLogger(__name__)

CLOUD_COVER_MAX = float(os.environ.get("ONEMAP_IMAGERY_MAX_CLOUD", "30"))  # percent
IMAGERY_ROLE = "visual"


class UnreadableAsset(Exception):
    """An asset that could not be read for a tile (already logged); the mosaic goes on without it."""


@dataclass(frozen=True)
class Scene:
    collection: str
    item_id: str
    href: str
    footprint: tuple[float, float, float, float]  # item bbox, lon/lat


def _meets(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] <= b[2] and a[2] >= b[0] and a[1] <= b[3] and a[3] >= b[1]


_scenes: dict[tuple, list[Scene]] = {}


def usable_scenes(state: LakeState) -> list[Scene]:
    """Usable scenes, newest first (one entry per item's visual asset)."""
    key = (str(state.home), state.silver_version(STAC_ITEMS), state.silver_version(STAC_ASSETS), CLOUD_COVER_MAX)
    if key in _scenes:
        return _scenes[key]
    items = delta_io.read_table(STAC_ITEMS, ["collection", "item_id", "datetime", "cloud_cover", "bbox_xmin",
                                             "bbox_ymin", "bbox_xmax", "bbox_ymax"],
                                state.silver_version(STAC_ITEMS)).to_pylist()
    assets = delta_io.read_table(STAC_ASSETS, ["collection", "item_id", "asset_key", "href", "roles"],
                                 state.silver_version(STAC_ASSETS)).to_pylist()
    visual = {}
    for a in assets:
        if IMAGERY_ROLE in json.loads(a["roles"] or "[]") or (a["asset_key"] == IMAGERY_ROLE and not a["roles"]):
            visual.setdefault((a["collection"], a["item_id"]), a["href"])
    usable = [i for i in items if i["cloud_cover"] is not None and i["cloud_cover"] < CLOUD_COVER_MAX
              and (i["collection"], i["item_id"]) in visual and i["bbox_xmin"] is not None]
    usable.sort(key=lambda i: i["datetime"].timestamp() if i["datetime"] else float("-inf"), reverse=True)
    scenes = [Scene(i["collection"], i["item_id"], visual[(i["collection"], i["item_id"])],
                    (i["bbox_xmin"], i["bbox_ymin"], i["bbox_xmax"], i["bbox_ymax"])) for i in usable]
    _scenes.clear()
    _scenes[key] = scenes
    return scenes


_extents: dict[tuple, tuple[float, float, float, float] | None] = {}
_warned: set[tuple] = set()
_lock = threading.Lock()


def _warn_once(href: str, stamp: object, reason: str) -> None:
    with _lock:
        if (href, stamp) in _warned:
            return
        _warned.add((href, stamp))
    log.warning("imagery asset %s skipped: %s", href, reason)


def _stamp(href: str) -> tuple | None:
    try:
        st = os.stat(href)
        return st.st_mtime_ns, st.st_size
    except OSError:
        return None


def asset_extent(href: str) -> tuple[float, float, float, float] | None:
    """The asset's lon/lat bounds (None, with a warning, when it cannot be opened); cached per file version."""
    stamp = _stamp(href)
    key = (href, stamp)
    if key not in _extents:
        try:
            with rasterio.open(href) as src:
                _extents[key] = tuple(transform_bounds(src.crs, "EPSG:4326", *src.bounds)) if src.crs else None
                if src.crs is None:
                    _warn_once(href, stamp, "the raster has no CRS")
        except Exception as exc:  # missing file, not a raster, corrupt header (RasterioIOError, CPLE_*, ...)
            _warn_once(href, stamp, f"cannot open it ({type(exc).__name__}: {exc})")
            _extents[key] = None
    return _extents[key]


def _read_tile(href: str, x: int, y: int, z: int) -> ImageData:
    try:
        with Reader(href) as src:
            indexes = (1, 2, 3) if src.dataset.count >= 3 else (1,)
            return src.tile(x, y, z, tilesize=256, indexes=indexes, resampling_method="bilinear")
    except TileOutsideBounds:
        raise
    except Exception as exc:  # GDAL reports corrupt data through several classes (CPLE_*, RasterioIOError, ...)
        _warn_once(href, _stamp(href), f"cannot read it ({type(exc).__name__}: {exc})")
        raise UnreadableAsset(href) from exc


def imagery_key(state: LakeState) -> str:
    return f"i{state.silver_version(STAC_ITEMS)}-a{state.silver_version(STAC_ASSETS)}-c{CLOUD_COVER_MAX:g}"


def imagery_tile(z: int, x: int, y: int) -> bytes | None:
    """PNG (256×256, alpha outside the imagery) of the latest usable imagery at an XYZ tile.

    None where no usable scene covers the tile: the page then shows Cesium's bundled NaturalEarthII base layer.
    Rendered tiles are cached under twin/cache/imagery/<key>/, the key naming the silver stac_items and
    stac_assets versions and the cloud threshold, so a new STAC ingest starts a fresh cache.
    """
    check_tile(z, x, y)
    state = current_state()
    bounds = tile_lonlat_bounds(z, x, y)
    hrefs = list(dict.fromkeys(s.href for s in usable_scenes(state) if _meets(s.footprint, bounds)))
    hrefs = [h for h in hrefs if (e := asset_extent(h)) is not None and _meets(e, bounds)]
    if not hrefs:
        return None
    folder = state.cache_dir / "imagery" / imagery_key(state)
    path = tilecache.tile_path(folder, z, x, y)
    body = tilecache.read(path)
    if body is not None:
        return body
    try:
        image, _ = mosaic_reader(hrefs, _read_tile, x, y, z, threads=1,
                                 allowed_exceptions=(TileOutsideBounds, UnreadableAsset))
    except EmptyMosaicError:
        return None
    if not np.any(image.mask):
        return None
    body = image.render(img_format="PNG")
    if not folder.exists():
        tilecache.prune_stale(folder.parent, imagery_key(state))
    tilecache.write(path, body)
    return body

