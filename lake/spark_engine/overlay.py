"""The Spark plan of the spatial joins: control-line pieces, and tile cogroups whose work runs in `geometry`.

Each join puts both sides on the tiles their bboxes touch (`tiles.with_tiles`), cogroups by tile and runs one
vectorised function per tile; the reference-point rule inside makes every pair appear exactly once.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import from_arrow_schema

from lake.spark_engine import geometry
from lake.spark_engine.tiles import DEFAULT_TILE_DEGREES, with_tiles

BBOX = ["bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax"]
TileFunction = Callable[[tuple, pa.Table, pa.Table], pa.Table]


def control_pieces(lines: DataFrame, max_vertices: int) -> DataFrame:
    """int_control_pieces: control polygons split to at most `max_vertices` vertices."""
    columns = lines.select("line_id", "line_type", "district_code", "geometry", *BBOX)
    schema = pa.schema([("line_id", pa.string()), ("line_type", pa.string()), ("district_code", pa.string()),
                        ("geometry", pa.binary()), *((b, pa.float64()) for b in BBOX)])

    def split(batches):
        for batch in batches:
            yield geometry.split_pieces(batch, max_vertices)

    return columns.mapInArrow(split, from_arrow_schema(schema))


def tile_join(left: DataFrame, right: DataFrame, function: TileFunction, schema: pa.Schema,
              tile_degrees: float = DEFAULT_TILE_DEGREES, left_pad: float = 0.0) -> DataFrame:
    """Cogroup both sides by grid tile and run `function(tile, left_rows, right_rows)` once per tile."""
    left_tiles = with_tiles(left, tile_degrees, left_pad).drop(*BBOX)
    right_tiles = with_tiles(right, tile_degrees).drop(*BBOX)

    def per_tile(key, left_rows: pa.Table, right_rows: pa.Table) -> pa.Table:
        tile = tuple(k.as_py() if hasattr(k, "as_py") else k for k in key)
        return function(tile, left_rows, right_rows)

    return (left_tiles.groupBy("tx", "ty").cogroup(right_tiles.groupBy("tx", "ty"))
            .applyInArrow(per_tile, from_arrow_schema(schema)))


def parcel_control_pairs(parcels: DataFrame, pieces: DataFrame, tile_degrees: float) -> DataFrame:
    left = parcels.select("parcel_id", "district_code", "is_construction", "allowed_in_basic_farmland",
                          "spheroid_area_m2", "geometry", *BBOX)
    right = pieces.select("line_type", "geometry", *BBOX)
    return tile_join(left, right, geometry.parcel_piece_pairs, geometry.PAIR_SCHEMA, tile_degrees)


def building_farmland_parts(buildings: DataFrame, pieces: DataFrame, tile_degrees: float) -> DataFrame:
    left = buildings.select("building_id", "district_code", "geometry", *BBOX)
    right = pieces.where("line_type = 'permanent_basic_farmland'").select("geometry", *BBOX)
    return tile_join(left, right, geometry.building_farmland_pairs, geometry.BUILDING_PART_SCHEMA, tile_degrees)


def building_points(buildings: DataFrame) -> DataFrame:
    """Buildings as their interior points (bbox = the point) with their footprint's ellipsoidal area."""
    schema = pa.schema([("building_id", pa.string()), ("footprint_m2", pa.float64()), ("geometry", pa.binary()),
                        *((b, pa.float64()) for b in BBOX)])

    def points(batches):
        for batch in batches:
            yield geometry.interior_points(batch)

    return buildings.select("building_id", "geometry", *BBOX).mapInArrow(points, from_arrow_schema(schema))


def parcel_buildings(parcels: DataFrame, points: DataFrame, tile_degrees: float) -> DataFrame:
    left = parcels.select("parcel_id", "geometry", *BBOX)
    return tile_join(left, points, geometry.parcel_building_pairs, geometry.PARCEL_BUILDING_SCHEMA, tile_degrees)


def parcel_hazards(parcels: DataFrame, hazards: DataFrame, tile_degrees: float, prefilter_degrees: float,
                   radius_m: float) -> DataFrame:
    left = parcels.select("parcel_id", "geometry", *BBOX)
    right = hazards.select("geometry", *BBOX)

    def function(tile, left_rows, right_rows):
        return geometry.parcel_hazard_pairs(tile, left_rows, right_rows, prefilter_degrees, radius_m)

    return tile_join(left, right, function, geometry.PARCEL_HAZARD_SCHEMA, tile_degrees, left_pad=prefilter_degrees)


def parcel_scenes(parcels: DataFrame, scenes: pa.Table) -> DataFrame:
    """The usable scenes are few (one region's catalog): shipped to every task with the function."""
    def latest(batches):
        for batch in batches:
            yield geometry.latest_scenes(batch, scenes)

    return parcels.select("parcel_id", "geometry").mapInArrow(latest, from_arrow_schema(geometry.SCENE_SCHEMA))
