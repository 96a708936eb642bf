"""Overlay tiles (parcels by land class, control-line conflicts, the three control lines) and the parcel lookup.

Sources: the published one map (gold one_map_parcels and control_line_conflicts, as of `latest_published()`)
for the latest survey year, silver parcels for the other survey years, silver control_lines (head). Each source
gets a spatial index once per version (spatial_index.py); tiles are cached on disk by the same key.

Generalisation rule: parcels and conflicts at zoom ≤ OVERVIEW_ZOOM (10) are sampled from the index's overview
raster, so a zoomed-out tile never reads polygons; above it only the row groups under the tile are read and
drawn. Control lines (hundreds to a few thousand polygons) are always drawn from their polygons, simplified to
the tile's pixel size.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from lake import delta_io
from lake.registry import CONTROL_LINES, GOLD_CONFLICTS, GOLD_ONE_MAP_PARCELS, PARCELS, TableSpec
from twin_viewer.maptiles import render, tilecache
from twin_viewer.maptiles.errors import UnknownLayerError
from twin_viewer.maptiles.lakestate import LakeState, current_state, gold_survey_year, survey_years
from twin_viewer.maptiles.spatial_index import OVERVIEW_ZOOM, FeatureIndex, build_index, open_index
from twin_viewer.maptiles.styles import LayerStyle, conflict_style, control_line_style, land_class_style
from twin_viewer.maptiles.tilemath import TILE_SIZE, check_tile, mercator_xy, pixel_size, tile_bounds

LAYERS = ("parcels", "conflicts", "control_lines")
PARCEL_OUTLINE_ZOOM = 14  # parcel boundaries are drawn from this zoom on (below they would blur into lines)


@dataclass(frozen=True)
class Source:
    """One overlay's data at one version: where its index lives and how to build it."""

    layer: str
    key: str  # cache key: starts with the gold build id, so a new publish starts new folders
    build_id: str
    spec: TableSpec  # the lake table (its canonical columns are the features' attributes)
    read: Callable[[], pa.Table]
    style: LayerStyle
    category_column: str
    overview: bool
    all_touched: bool = False

    def index(self, state: LakeState) -> FeatureIndex:
        folder = state.cache_dir / "index" / self.layer / self.key
        return open_index(folder, self._build)

    def _build(self, folder: Path) -> None:
        table = self.read()
        categories = self.style.categories(table.column(self.category_column).to_pylist())
        build_index(folder, table, categories, self.overview, self.all_touched)
        tilecache.prune_stale(folder.parent, self.build_id)


def _columns(spec: TableSpec) -> list[str]:
    return [f.name for f in spec.columns] + ["geometry"]


Districts = tuple[str, ...] | None  # only these districts' features (a department's grant); None: all


def _reader(spec: TableSpec, version: int | None, districts: Districts,
            where: pc.Expression | None = None) -> Callable[[], pa.Table]:
    """Reads the features of `spec` at `version` (those matching `where`, in `districts`)."""
    if districts is not None:
        inside = pc.field("district_code").isin(list(districts))
        where = inside if where is None else where & inside

    def read() -> pa.Table:
        table = delta_io.open_table(spec, version)
        if table is None:
            return spec.schema.empty_table().select(_columns(spec))
        return delta_io.read_snapshot(table, _columns(spec), where)

    return read


def _key(key: str, districts: Districts) -> str:
    """A source restricted to some districts has an index and tiles of its own, beside the whole layer's."""
    if districts is None:
        return key
    return f"{key}-d{hashlib.sha1(','.join(sorted(districts)).encode()).hexdigest()[:12]}"


def _parcels_source(state: LakeState, year: int | None, districts: Districts) -> Source:
    latest = gold_survey_year(state)
    build = state.build_id or ""
    if year is None or year == latest:
        return Source("parcels", _key(f"{build}-y{latest}", districts), build, GOLD_ONE_MAP_PARCELS,
                      _reader(GOLD_ONE_MAP_PARCELS, state.gold_version(GOLD_ONE_MAP_PARCELS), districts),
                      land_class_style(), "land_class_code", overview=True)
    years = survey_years(state)
    if year not in years:
        raise UnknownLayerError(f"no parcels for survey year {year}; survey years: {years}")
    version = state.silver_version(PARCELS)
    return Source("parcels", _key(f"{build}-s{version}-y{year}", districts), build, PARCELS,
                  _reader(PARCELS, version, districts, pc.field("survey_year") == year), land_class_style(),
                  "land_class_code", overview=True)


def source(layer: str, year: int | None = None, state: LakeState | None = None, districts: Districts = None) \
        -> Source:
    """The data behind an overlay (and its cache key) for the current lake state, optionally only some districts'."""
    state = state or current_state()
    if layer == "parcels":
        return _parcels_source(state, year, districts)
    build = state.build_id or ""
    if layer == "conflicts":
        version = state.gold_version(GOLD_CONFLICTS)  # a clear error before the first publish
        return Source("conflicts", _key(build, districts), build, GOLD_CONFLICTS,
                      _reader(GOLD_CONFLICTS, version, districts),
                      conflict_style(), "severity", overview=True, all_touched=True)
    if layer == "control_lines":
        state.gold_version(GOLD_ONE_MAP_PARCELS)  # the overlays show one published map: none before a publish
        version = state.silver_version(CONTROL_LINES)
        return Source("control_lines", _key(f"{build}-s{version}", districts), build, CONTROL_LINES,
                      _reader(CONTROL_LINES, version, districts),
                      control_line_style(), "line_type", overview=False)
    raise UnknownLayerError(f"no overlay layer {layer!r}; layers: {', '.join(LAYERS)}")


def _draw(src: Source, index: FeatureIndex, z: int, x: int, y: int) -> bytes:
    bounds = tile_bounds(z, x, y)
    if not index.intersects(bounds):
        return render.empty_png()
    if src.overview and z <= OVERVIEW_ZOOM and index.overview is not None:
        fill = index.overview.sample(z, x, y)
        return render.encode_png(render.colour(fill, src.style)) if fill.any() else render.empty_png()
    rows = index.query(bounds, ["category", "geometry"])
    if rows.num_rows == 0:
        return render.empty_png()
    geoms = shapely.from_wkb(rows.column("geometry").to_numpy(zero_copy_only=False))
    categories = rows.column("category").to_numpy()
    transform, shape = render.tile_transform(bounds), (TILE_SIZE, TILE_SIZE)
    if src.layer == "control_lines":
        geoms = shapely.simplify(geoms, pixel_size(z) / 2)
        fill = render.rasterize(geoms, categories, transform, shape)
        lines = render.outlines(geoms, categories, transform, shape, width=2)
        return render.encode_png(render.colour(fill, src.style, lines))
    fill = render.rasterize(geoms, categories, transform, shape, all_touched=src.all_touched)
    lines = None
    if src.layer == "conflicts" or z >= PARCEL_OUTLINE_ZOOM:
        lines = render.outlines(geoms, categories, transform, shape)
    return render.encode_png(render.colour(fill, src.style, lines, lines_over_all=src.layer != "conflicts"))


def overlay_tile(layer: str, z: int, x: int, y: int, year: int | None = None, districts: Districts = None) -> bytes:
    """Transparent 256×256 PNG of an overlay at an XYZ Web-Mercator tile (see the module doc for sources), drawn
    from `districts`' features only when given."""
    check_tile(z, x, y)
    if layer not in LAYERS:
        raise UnknownLayerError(f"no overlay layer {layer!r}; layers: {', '.join(LAYERS)}")
    state = current_state()
    src = source(layer, year, state, districts)
    folder = state.cache_dir / "overlay" / layer / src.key
    path = tilecache.tile_path(folder, z, x, y)
    body = tilecache.read(path)
    if body is None:
        body = _draw(src, src.index(state), z, x, y)
        if not folder.exists():
            tilecache.prune_stale(folder.parent, src.build_id)
        tilecache.write(path, body)
    return body


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parcel_at(lon: float, lat: float, year: int | None = None, districts: Districts = None) -> dict | None:
    """The attributes of the parcel under (lon, lat) in WGS84/CGCS2000 degrees (among `districts`' parcels when
    given), or None.

    The latest survey year answers from the published one map (gold columns), other years from silver parcels
    (silver columns). A point on a boundary shared by two parcels returns one of them.
    """
    src = source("parcels", year, districts=districts)
    index = src.index(current_state())
    x, y = (float(v) for v in mercator_xy(lon, lat))
    rows = index.query((x, y, x, y), ["geometry"])
    hit = np.flatnonzero(shapely.intersects_xy(
        shapely.from_wkb(rows.column("geometry").to_numpy(zero_copy_only=False)), x, y))
    if not len(hit):
        return None
    row = index.row(rows.column("_group")[int(hit[0])].as_py(), rows.column("_row")[int(hit[0])].as_py(),
                    [f.name for f in src.spec.columns])
    return {k: _json_value(v) for k, v in row.items()}


def warm() -> None:
    """Build every overlay index of the current lake state ahead of the first request (e.g. after a publish)."""
    state = current_state()
    for year in survey_years(state):
        source("parcels", year, state).index(state)
    for layer in ("conflicts", "control_lines"):
        source(layer, None, state).index(state)
