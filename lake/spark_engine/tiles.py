"""Grid tiles for the distributed overlay.

Every geometry goes to every tile its bbox touches (a bbox edge exactly on a tile edge touches both tiles). A
pair of geometries is then present in every tile both bboxes touch, and is computed in exactly one: the tile
holding the reference point, the lower-left corner of the intersection of the two bboxes. Because the tile index
is a monotonic floor, that tile is (max of the two lower tile columns, max of the two lower tile rows): the rule
needs only the integer tile indices Spark computed, never a second floating-point evaluation on executors.
"""

from __future__ import annotations

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

DEFAULT_TILE_DEGREES = 0.25
ORIGIN_X, ORIGIN_Y = -180.0, -90.0


def _index(value: Column, origin: float, size: float) -> Column:
    return F.floor((value - F.lit(origin)) / F.lit(size)).cast("long")


def with_tiles(frame: DataFrame, size: float = DEFAULT_TILE_DEGREES, pad: float = 0.0) -> DataFrame:
    """One row per (geometry, touched tile): columns tx, ty (the tile) and tx0, ty0 (the bbox's lower tile).

    `pad` widens the bbox (degrees) for distance joins: a point within `pad` of a geometry lies in its padded bbox.
    """
    tx0 = _index(F.col("bbox_xmin") - F.lit(pad), ORIGIN_X, size)
    ty0 = _index(F.col("bbox_ymin") - F.lit(pad), ORIGIN_Y, size)
    tx1 = _index(F.col("bbox_xmax") + F.lit(pad), ORIGIN_X, size)
    ty1 = _index(F.col("bbox_ymax") + F.lit(pad), ORIGIN_Y, size)
    return (frame.withColumn("tx0", tx0).withColumn("ty0", ty0)
            .withColumn("tx", F.explode(F.sequence(tx0, tx1)))
            .withColumn("ty", F.explode(F.sequence(ty0, ty1))))


def owned_here(tile: tuple[int, int], left_tx0: np.ndarray, left_ty0: np.ndarray, right_tx0: np.ndarray,
               right_ty0: np.ndarray) -> np.ndarray:
    """Mask of candidate pairs whose reference point (lower-left of the bbox intersection) lies in `tile`."""
    return (np.maximum(left_tx0, right_tx0) == tile[0]) & (np.maximum(left_ty0, right_ty0) == tile[1])

