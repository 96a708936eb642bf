"""Map tiles and lookups for the twin viewer: STAC imagery tiles, overlay tiles (parcels by land class, conflicts,
control lines), tiles of several of these composited, the parcel under a point, small vector layers, the
land-class legend and the survey years.

All coordinates the page receives are WGS84 lon/lat: the lake is CGCS2000 (EPSG:4490), treated as WGS84 at map
scale (the two frames differ by centimetres). Tiles are 256×256 Web-Mercator XYZ (EPSG:3857).
"""

from __future__ import annotations

from lake.registry import TableSpec
from twin_viewer.maptiles.composite import STACK as MAP_LAYERS
from twin_viewer.maptiles.composite import map_tile
from twin_viewer.maptiles.default_view import TARGET as DEFAULT_TARGET
from twin_viewer.maptiles.default_view import warm
from twin_viewer.maptiles.errors import TileAddressError, UnknownLayerError
from twin_viewer.maptiles.imagery import imagery_tile
from twin_viewer.maptiles.lakestate import current_state
from twin_viewer.maptiles.lakestate import survey_years as _survey_years
from twin_viewer.maptiles.overlays import LAYERS as OVERLAY_LAYERS
from twin_viewer.maptiles.overlays import overlay_tile, parcel_at, source
from twin_viewer.maptiles.styles import legend, overlay_legend
from twin_viewer.maptiles.vectors import vector_layer


def survey_years() -> list[int]:
    """Survey years with parcels (the published one map's year and silver's), ascending."""
    return _survey_years(current_state())


def parcels_table(year: int | None = None) -> TableSpec:
    """The table the parcels of a survey year are drawn and looked up from: the published one map for its year
    (and None), silver parcels for the others (UnknownLayerError for a year without parcels)."""
    return source("parcels", year).spec


__all__ = ["DEFAULT_TARGET", "MAP_LAYERS", "OVERLAY_LAYERS", "TileAddressError", "UnknownLayerError", "imagery_tile",
           "legend", "map_tile", "overlay_legend", "overlay_tile", "parcel_at", "parcels_table", "survey_years",
           "vector_layer", "warm"]
