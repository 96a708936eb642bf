"""A square grid of parcels written straight to silver/parcels: millions of rows in seconds, for API tests and the
OGC API benchmark, where the ingest rules are not under test. Rows are written in grid order (row by row within
each district band), so Parquet statistics on the bbox_* columns let bbox queries skip most row groups.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import shapely

from lake import delta_io
from lake.registry import PARCELS

ORIGIN = (105.5, 28.5)  # south-west corner, inside the Chongqing region


def grid_table(side: int, districts: list[str], cell_deg: float = 0.004, first: int = 0, rows: int | None = None,
               ) -> pa.Table:
    """Rows `first`..`first+rows` of a side×side grid; district bands split the columns evenly (west to east)."""
    total = side * side
    rows = total - first if rows is None else min(rows, total - first)
    band = np.repeat(np.arange(len(districts)), -(-side // len(districts)))[:side]
    # order: district band, then grid row, then column → spatially clustered files and row groups
    row_idx, col_idx = np.divmod(np.arange(total), side)
    keys = np.lexsort((col_idx, row_idx, band[col_idx]))[first:first + rows]
    r, c = row_idx[keys], col_idx[keys]
    xmin, ymin = ORIGIN[0] + c * cell_deg, ORIGIN[1] + r * cell_deg
    xmax, ymax = xmin + cell_deg * 0.98, ymin + cell_deg * 0.98
    geoms = shapely.box(xmin, ymin, xmax, ymax)
    codes = np.array(districts)[band[c]]
    n = len(keys)
    ids = np.char.add("G", np.char.zfill((r * side + c).astype(str), 8))
    classes = np.array(["0101", "0301", "0702", "1001", "0201"])[(r * 7 + c) % 5]
    area = np.full(n, 190_000.0)
    columns = {
        "parcel_id": pa.array(ids), "parcel_number": pa.array(ids), "survey_year": pa.array(np.full(n, 2023, np.int32)),
        "district_code": pa.array(codes), "land_class_code": pa.array(classes),
        "land_class_name": pa.nulls(n, pa.string()), "locating_unit_code": pa.array(np.char.add(codes, "001001")),
        "reported_area_m2": pa.array(area), "deduction_factor": pa.array(np.zeros(n)),
        "deduction_area_m2": pa.array(np.zeros(n)), "urban_rural_code": pa.nulls(n, pa.string()),
        "area_m2": pa.array(area), "net_area_m2": pa.array(area),
        "geometry": pa.array(shapely.to_wkb(geoms), pa.binary()), "bbox_xmin": pa.array(xmin),
        "bbox_ymin": pa.array(ymin), "bbox_xmax": pa.array(xmax), "bbox_ymax": pa.array(ymax),
    }
    for field in PARCELS.schema:
        columns.setdefault(field.name, pa.nulls(n, field.type))
    return pa.table(columns).select(PARCELS.schema.names)


def write_parcel_grid(side: int, districts: list[str], cell_deg: float = 0.004, chunk: int = 250_000) -> int:
    """Append the side×side grid to silver/parcels in chunks (one commit each); returns the rows written."""
    total = side * side
    for first in range(0, total, chunk):
        delta_io.append(PARCELS, grid_table(side, districts, cell_deg, first, chunk))
    return total
