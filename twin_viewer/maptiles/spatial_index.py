"""A tile-friendly spatial index of one overlay's polygons, built once per source version and kept on disk.

`features.parquet`: the features projected to Web-Mercator, sorted along a Hilbert curve of their bbox centres
and written in row groups of ROW_GROUP rows with min/max statistics on the bbox columns, so a tile (or a point)
reads only the few row groups whose bbox meets it. Columns: the table's attributes, `category` (uint8 style
index), `minx/miny/maxx/maxy` (metres) and `geometry` (WKB, metres).

`overview.npy` (layers with many features): every feature rasterised once onto the zoom-OVERVIEW_ZOOM pixel grid
(about 130 m at Chongqing's latitude). Tiles at zoom ≤ OVERVIEW_ZOOM are sampled from it and never touch the
polygons, whatever their number; tiles above it are drawn from the polygons of their row groups.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from rasterio.transform import Affine

from twin_viewer.maptiles import render
from twin_viewer.maptiles.tilemath import HALF_WORLD, TILE_SIZE, pixel_size, to_mercator

ROW_GROUP = 4096
OVERVIEW_ZOOM = 10
BBOX = ("minx", "miny", "maxx", "maxy")
HILBERT_ORDER = 16


def hilbert_keys(x: np.ndarray, y: np.ndarray, order: int = HILBERT_ORDER) -> np.ndarray:
    """Distance along a Hilbert curve of order `order` for integer cell coordinates 0..2^order-1 (vectorised)."""
    n = 1 << order
    x, y, d = x.astype(np.int64), y.astype(np.int64), np.zeros(len(x), np.int64)
    s = n >> 1
    while s > 0:
        rx, ry = (x & s) > 0, (y & s) > 0
        d += s * s * ((3 * rx) ^ ry)
        flip = ~ry & rx
        x, y = np.where(flip, n - 1 - x, x), np.where(flip, n - 1 - y, y)
        swap = ~ry
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        s >>= 1
    return d


def _hilbert_order(bounds: np.ndarray) -> np.ndarray:
    cx, cy = (bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2
    cells = (1 << HILBERT_ORDER) - 1

    def scale(v: np.ndarray) -> np.ndarray:
        span = max(float(v.max() - v.min()), 1e-9) if len(v) else 1.0
        return ((v - (v.min() if len(v) else 0)) / span * cells).astype(np.int64)

    return np.argsort(hilbert_keys(scale(cx), scale(cy)), kind="stable")


@dataclass(frozen=True)
class Overview:
    """A category raster on the zoom-OVERVIEW_ZOOM pixel grid; (col0, row0) is its top-left global pixel."""

    pixels: np.ndarray
    col0: int
    row0: int

    def sample(self, z: int, x: int, y: int) -> np.ndarray:
        """The tile's 256×256 categories, nearest pixel centre (z ≤ OVERVIEW_ZOOM)."""
        f = 2 ** (OVERVIEW_ZOOM - z)
        offsets = ((np.arange(TILE_SIZE) + 0.5) * f).astype(np.int64)
        cols, rows = x * TILE_SIZE * f + offsets - self.col0, y * TILE_SIZE * f + offsets - self.row0
        ok_c = (cols >= 0) & (cols < self.pixels.shape[1])
        ok_r = (rows >= 0) & (rows < self.pixels.shape[0])
        out = np.zeros((TILE_SIZE, TILE_SIZE), np.uint8)
        if ok_c.any() and ok_r.any():
            out[np.ix_(ok_r, ok_c)] = self.pixels[np.ix_(rows[ok_r], cols[ok_c])]
        return out


def _render_overview(geoms: np.ndarray, categories: np.ndarray, extent: tuple[float, ...],
                     all_touched: bool) -> Overview:
    size = pixel_size(OVERVIEW_ZOOM)
    col0, row0 = int((extent[0] + HALF_WORLD) // size), int((HALF_WORLD - extent[3]) // size)
    col1, row1 = int((extent[2] + HALF_WORLD) // size) + 1, int((HALF_WORLD - extent[1]) // size) + 1
    transform = Affine(size, 0, -HALF_WORLD + col0 * size, 0, -size, HALF_WORLD - row0 * size)
    pixels = render.rasterize(geoms, categories, transform, (row1 - row0, col1 - col0), all_touched)
    return Overview(pixels, col0, row0)


def build_index(folder: Path, table: pa.Table, categories: np.ndarray, overview: bool,
                all_touched: bool = False) -> None:
    """Write the index of `table` (attribute columns + `geometry` WKB in lon/lat) into `folder`, atomically.

    Rows without a usable geometry are left out (the lake's gates keep them out of gold already).
    """
    geoms = to_mercator(shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)))
    bounds = shapely.bounds(geoms)
    keep = np.isfinite(bounds).all(axis=1)
    order = np.flatnonzero(keep)[_hilbert_order(bounds[keep])]
    geoms, bounds, categories = geoms[order], bounds[order], categories[order]
    attrs = table.drop_columns([c for c in table.column_names if c == "geometry" or c.startswith("bbox_")])
    out = attrs.take(pa.array(order)).append_column("category", pa.array(categories, pa.uint8()))
    for i, name in enumerate(BBOX):
        out = out.append_column(name, pa.array(bounds[:, i]))
    out = out.append_column("geometry", pa.array(shapely.to_wkb(geoms), pa.binary()))
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir(parents=True)
    pq.write_table(out, tmp / "features.parquet", row_group_size=ROW_GROUP, write_statistics=list(BBOX),
                   compression="lz4")
    extent = (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max()) if len(geoms) \
        else None
    meta = {"features": len(geoms), "extent": extent}
    if overview and extent is not None:
        ov = _render_overview(geoms, categories, extent, all_touched)
        np.save(tmp / "overview.npy", ov.pixels)
        meta["overview"] = {"zoom": OVERVIEW_ZOOM, "col0": ov.col0, "row0": ov.row0}
    (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    try:
        os.rename(tmp, folder)
    except OSError:  # another thread or process built it first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "meta.json").exists():
            raise


class FeatureIndex:
    """Read side of one index folder; safe to share between threads (each read opens the file anew)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.features: int = meta["features"]
        self.extent: tuple[float, float, float, float] | None = tuple(meta["extent"]) if meta["extent"] else None
        self._overview_meta = meta.get("overview")

    @cached_property
    def overview(self) -> Overview | None:
        if self._overview_meta is None:
            return None
        return Overview(np.load(self.folder / "overview.npy", mmap_mode="r"), self._overview_meta["col0"],
                        self._overview_meta["row0"])

    @cached_property
    def _row_groups(self) -> np.ndarray:
        """(n, 4) bbox of each row group from the Parquet statistics."""
        meta = pq.ParquetFile(self.folder / "features.parquet").metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        cols = [names.index(c) for c in BBOX]
        out = np.empty((meta.num_row_groups, 4))
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            stats = [rg.column(c).statistics for c in cols]
            out[g] = (stats[0].min, stats[1].min, stats[2].max, stats[3].max)
        return out

    def intersects(self, bounds: tuple[float, float, float, float]) -> bool:
        e = self.extent
        return e is not None and not (e[2] < bounds[0] or e[0] > bounds[2] or e[3] < bounds[1] or e[1] > bounds[3])

    def query(self, bounds: tuple[float, float, float, float], columns: list[str] | None = None) -> pa.Table:
        """Rows whose bbox meets `bounds` (metres), in index order; `columns` None = all. Two extra columns,
        `_group` and `_row`, locate each row for `row()`."""
        rg = self._row_groups
        hit = np.flatnonzero((rg[:, 0] <= bounds[2]) & (rg[:, 2] >= bounds[0]) &
                             (rg[:, 1] <= bounds[3]) & (rg[:, 3] >= bounds[1]))
        wanted = None if columns is None else list(dict.fromkeys([*columns, *BBOX]))
        parquet = pq.ParquetFile(self.folder / "features.parquet")
        parts = []
        for group in hit.tolist():
            part = parquet.read_row_group(group, columns=wanted, use_threads=False)
            b = [part.column(c).to_numpy() for c in BBOX]
            mask = (b[0] <= bounds[2]) & (b[2] >= bounds[0]) & (b[1] <= bounds[3]) & (b[3] >= bounds[1])
            rows = np.flatnonzero(mask)
            parts.append(part.take(pa.array(rows)).append_column("_group", pa.array(np.full(len(rows), group)))
                         .append_column("_row", pa.array(rows)))
        if not parts:
            empty = parquet.schema_arrow.empty_table()
            empty = empty.select(wanted) if wanted else empty
            return empty.append_column("_group", pa.array([], pa.int64())).append_column("_row", pa.array([], pa.int64()))
        return pa.concat_tables(parts)

    def row(self, group: int, row: int, columns: list[str]) -> dict:
        """One feature's `columns`, located by `query`'s `_group` and `_row`."""
        part = pq.ParquetFile(self.folder / "features.parquet").read_row_group(group, columns=columns,
                                                                               use_threads=False)
        return part.slice(row, 1).to_pylist()[0]

OPEN_INDEXES = 32  # indexes kept open per process (each layer, year and build has its own)
_open: dict[Path, FeatureIndex] = {}
_locks: dict[Path, threading.Lock] = {}
_guard = threading.Lock()


def open_index(folder: Path, build: Callable[[Path], None]) -> FeatureIndex:
    """The index in `folder`, built first by `build(folder)` when missing (once, even under concurrent requests)."""
    index = _open.get(folder)
    if index is not None:
        return index
    with _guard:
        lock = _locks.setdefault(folder, threading.Lock())
    with lock:
        if folder not in _open:
            if not (folder / "meta.json").exists():
                build(folder)
            while len(_open) >= OPEN_INDEXES:
                _open.pop(next(iter(_open)))
            _open[folder] = FeatureIndex(folder)
    return _open[folder]
