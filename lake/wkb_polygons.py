"""Single-ring polygons handled in their WKB bytes: coordinates out, reprojected coordinates back in.

Survey parcels are nearly all plain polygons (one ring, no holes, 2D). Reprojecting them through GEOS objects
(read coordinates, build new geometries, write WKB) costs more than the projection itself at a million parcels.
Here the coordinates of those rows are one numpy view of the WKB buffer and the reprojected ones are written into
a copy of it, byte-compatible with what GEOS writes. Every other row (holes, multi-geometries, 3D, big-endian or
extended WKB) is left to GEOS by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

_HEADER = 13  # byte order (1), type (4), rings (4), points in the ring (4)
_LITTLE_ENDIAN, _POLYGON = 1, 3


def _uint32(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (data[at].astype(np.uint32) | data[at + 1].astype(np.uint32) << 8
            | data[at + 2].astype(np.uint32) << 16 | data[at + 3].astype(np.uint32) << 24)


def _buffers(wkb: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (int64, one more than rows) and data bytes of a binary or large_binary array."""
    if wkb.offset:
        wkb = wkb.take(pa.array(np.arange(len(wkb))))
    width = np.int64 if pa.types.is_large_binary(wkb.type) else np.int32
    offsets = np.frombuffer(wkb.buffers()[1], dtype=width, count=len(wkb) + 1).astype(np.int64)
    data = np.frombuffer(wkb.buffers()[2], dtype=np.uint8) if wkb.buffers()[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


@dataclass(frozen=True)
class SingleRingPolygons:
    """The rows of a WKB column that are little-endian 2D one-ring polygons, and where their coordinates lie."""

    rows: np.ndarray  # bool per row
    offsets: np.ndarray  # int64 per row + 1, into data
    data: np.ndarray  # the WKB bytes of all rows
    coordinate_bytes: np.ndarray  # bool per byte of data: the selected rows' coordinates
    ring_of_coordinate: np.ndarray  # for each coordinate, the position of its row among the selected rows

    @classmethod
    def scan(cls, wkb: pa.Array, candidates: np.ndarray) -> SingleRingPolygons:
        """Select, among the candidate rows (bool mask), those whose WKB is a one-ring 2D polygon."""
        offsets, data = _buffers(wkb)
        start, length = offsets[:-1], np.diff(offsets)
        rows = candidates & ~np.asarray(wkb.is_null()) & (length >= _HEADER)
        at = start[rows]
        points = _uint32(data, at + 9).astype(np.int64)
        simple = ((data[at] == _LITTLE_ENDIAN) & (_uint32(data, at + 1) == _POLYGON) & (_uint32(data, at + 5) == 1)
                  & (points >= 4) & (length[rows] == _HEADER + 16 * points))
        rows[np.flatnonzero(rows)[~simple]] = False
        at, points = at[simple], points[simple]
        edges = np.zeros(len(data) + 1, dtype=np.int8)
        edges[at + _HEADER] = 1
        edges[offsets[1:][rows]] -= 1
        coordinate_bytes = np.cumsum(edges[:-1], dtype=np.int8).view(bool)
        return cls(rows, offsets, data, coordinate_bytes, np.repeat(np.arange(len(at)), points))

    def coordinates(self) -> np.ndarray:
        """(n, 2) x, y of the selected rows, ring after ring."""
        return self.data[self.coordinate_bytes].view("<f8").reshape(-1, 2)

    def bounds(self, coordinates: np.ndarray) -> np.ndarray:
        """(k, 4) xmin, ymin, xmax, ymax of each selected row (every ring has at least four points)."""
        if not len(coordinates):
            return np.zeros((0, 4))
        first = np.r_[0, np.flatnonzero(np.diff(self.ring_of_coordinate)) + 1]
        x, y = coordinates[:, 0], coordinates[:, 1]
        return np.column_stack([np.minimum.reduceat(x, first), np.minimum.reduceat(y, first),
                                np.maximum.reduceat(x, first), np.maximum.reduceat(y, first)])

    def with_coordinates(self, coordinates: np.ndarray) -> pa.LargeBinaryArray:
        """Every row's WKB, the selected rows' coordinates replaced by `coordinates` (others keep their bytes)."""
        data = self.data.copy()
        data[self.coordinate_bytes] = np.ascontiguousarray(coordinates, dtype="<f8").view(np.uint8).ravel()
        return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(self.rows),
                                                [None, pa.py_buffer(self.offsets), pa.py_buffer(data)])
