"""Small layers the page draws as vectors (GeoJSON): hazard points, simplified control lines and districts.

Coordinates are CGCS2000 lon/lat passed on as WGS84 (they differ by centimetres), rounded to 6 decimals
(about 0.1 m). Outlines are simplified to SIMPLIFY_DEG, enough for a region-wide view and clamping to terrain.
"""

from __future__ import annotations

import json

import shapely

from lake import delta_io
from lake.registry import CONTROL_LINES, DISTRICTS, HAZARD_POINTS, TableSpec
from twin_viewer.maptiles.errors import UnknownLayerError
from twin_viewer.maptiles.lakestate import current_state

SIMPLIFY_DEG = {"control_lines": 0.0005, "districts": 0.002}  # about 50 m and 200 m
LAYERS: dict[str, TableSpec] = {"hazard_points": HAZARD_POINTS, "control_lines": CONTROL_LINES,
                                "districts": DISTRICTS}
_cache: dict[tuple, dict] = {}


def vector_layer(name: str) -> dict:
    """GeoJSON FeatureCollection of a small layer (silver head), properties = the table's canonical columns."""
    spec = LAYERS.get(name)
    if spec is None:
        raise UnknownLayerError(f"no vector layer {name!r}; layers: {', '.join(LAYERS)}")
    state = current_state()
    key = (str(state.home), name, state.silver_version(spec))
    if key not in _cache:
        columns = [f.name for f in spec.columns]
        table = delta_io.read_table(spec, [*columns, "geometry"], state.silver_version(spec))
        geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
        if name in SIMPLIFY_DEG:
            geoms = shapely.simplify(geoms, SIMPLIFY_DEG[name], preserve_topology=True)
        geoms = shapely.set_precision(geoms, 1e-6)
        shapes = shapely.to_geojson(geoms)
        features = [{"type": "Feature", "geometry": json.loads(shape), "properties": props}
                    for shape, props in zip(shapes, table.select(columns).to_pylist(), strict=True)
                    if shape is not None]
        _cache[key] = {"type": "FeatureCollection", "name": name, "features": features}
    return _cache[key]
