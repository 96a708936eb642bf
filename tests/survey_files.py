"""Small survey deliveries written by tests (real formats, through GDAL or plain JSON)."""

from __future__ import annotations

import json
from pathlib import Path

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
