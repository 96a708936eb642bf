"""Small survey deliveries written by tests (real formats, through GDAL or plain JSON)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyogrio
import shapely

PARCELS_CONTRACT = """
feed: test_parcels
table: parcels
landing: parcels/*.geojson
crs: EPSG:4490
fields:
  parcel_id: BSM
  survey_year: {value: 2019}
  district_code: {field: ZLDWDM, slice: [0, 6]}
  land_class_code: DLBM
  deduction_factor: KCXS
"""


def parcel(bsm: str, dlbm: str = "0101", geometry: object = "box", x: float = 106.50, y: float = 29.50,
           zldwdm: str = "500112001001", kcxs: float | None = 0.1) -> dict:
    """A GeoJSON parcel feature; geometry 'box' makes a ~100 m square at (x, y)."""
    if geometry == "box":
        geometry = json.loads(shapely.to_geojson(shapely.box(x, y, x + 0.001, y + 0.001)))
    return {"type": "Feature", "properties": {"BSM": bsm, "DLBM": dlbm, "ZLDWDM": zldwdm, "KCXS": kcxs},
            "geometry": geometry}


def write_geojson(path: Path, features: list[dict], crs: str | None = None, bare_array: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: object = features if bare_array else {"type": "FeatureCollection", "features": features}
    if crs and not bare_array:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}  # type: ignore[index]
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def good_parcels(n: int, prefix: str = "P") -> list[dict]:
    return [parcel(f"{prefix}{i:05d}", x=106.40 + (i % 50) * 0.002, y=29.40 + (i // 50) * 0.002) for i in range(n)]


CONTROL_LINES_CONTRACT = """
feed: {feed}
table: control_lines
landing: lines/*.shp
{extra}
fields:
  line_id: HXBH
  line_type: {{field: HXLX, map: {{生态保护红线: ecological_red_line}}}}
  name: 名称
  district_code: XZQDM
"""


def write_shapefile(path: Path, n: int, encoding: str = "GBK") -> Path:
    """A control-line shapefile of n records; record i is L<i>, a ~50 m square whose west edge is at 106.5 + i/1000."""
    path.parent.mkdir(parents=True, exist_ok=True)
    boxes = [shapely.box(106.5 + i * 0.001, 29.5, 106.5 + i * 0.001 + 0.0005, 29.5005) for i in range(n)]
    text = {"HXBH": [f"L{i}" for i in range(n)], "HXLX": ["生态保护红线"] * n, "名称": ["缙云山"] * n,
            "XZQDM": ["500112"] * n}
    pyogrio.write_arrow(_text_and_geometry(text, boxes), path, driver="ESRI Shapefile", crs="EPSG:4490", encoding=encoding,
                        geometry_name="geometry", geometry_type="Polygon")
    return path


def _text_and_geometry(text: dict[str, list[str]], geoms: list[shapely.Geometry]) -> pa.Table:
    """Text columns typed as text even when empty (GDAL cannot create a field of Arrow's null type)."""
    return pa.table({**{name: pa.array(values, pa.string()) for name, values in text.items()},
                     "geometry": pa.array(shapely.to_wkb(np.array(geoms, dtype=object)).tolist(), pa.binary())})


def shorten_dbf(shp: Path, records: int, header_counts_all: bool = False) -> None:
    """Keep the first `records` records of the .dbf: a short export (header updated) or a cut-off copy (header not)."""
    dbf = shp.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    header_length, record_length = struct.unpack("<HH", data[8:12])
    if not header_counts_all:
        data[4:8] = struct.pack("<I", records)
    dbf.write_bytes(bytes(data[:header_length + records * record_length]))


def shorten_shapes(shp: Path, shapes: int, shp_too: bool = True) -> None:
    """Index only the first `shapes` shapes in the .shx, and end the .shp after them too unless `shp_too` is False."""
    shx = shp.with_suffix(".shx")
    index = bytearray(shx.read_bytes())[:100 + 8 * shapes]
    index[24:28] = struct.pack(">i", len(index) // 2)
    shx.write_bytes(bytes(index))
    if shp_too:
        offset, length = struct.unpack_from(">ii", index, 100 + 8 * (shapes - 1))
        data = bytearray(shp.read_bytes())[:2 * (offset + 4 + length)]
        data[24:28] = struct.pack(">i", len(data) // 2)
        shp.write_bytes(bytes(data))


def cut_file(path: Path, keep: int | float) -> Path:
    """Cut a file short as a failed copy does: keep `keep` bytes (an int) or that share of them (a float)."""
    data = path.read_bytes()
    path.write_bytes(data[:keep if isinstance(keep, int) else int(len(data) * keep)])
    return path


OGR_PARCELS_CONTRACT = """
feed: {feed}
table: parcels
format: {format}
landing: ogr/*
{extra}
fields:
  parcel_id: BSM
  survey_year: {{value: 2019}}
  district_code: {{field: ZLDWDM, slice: [0, 6]}}
  land_class_code: DLBM
"""


def write_parcels_gpkg(path: Path, layers: dict[str, list[shapely.Geometry]], driver: str = "GPKG") -> Path:
    """A GeoPackage (or FileGDB) with the given layers of parcels (BSM <layer><i>, 水田 in 500112); a GeoPackage
    layer takes any geometry type."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for layer, geoms in layers.items():
        text = {"BSM": [f"{layer}{i}" for i in range(len(geoms))], "DLBM": ["0101"] * len(geoms),
                "ZLDWDM": ["500112001001"] * len(geoms)}
        pyogrio.write_arrow(_text_and_geometry(text, geoms), path, layer=layer, driver=driver, crs="EPSG:4490", geometry_name="geometry",
                            geometry_type="Unknown" if driver == "GPKG" else "Polygon")
    return path


def parcel_boxes(n: int) -> list[shapely.Geometry]:
    return [shapely.box(106.40 + (i % 50) * 0.002, 29.40 + (i // 50) * 0.002,
                        106.40 + (i % 50) * 0.002 + 0.001, 29.40 + (i // 50) * 0.002 + 0.001) for i in range(n)]
