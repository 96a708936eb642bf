"""The region's reference facts shipped with the repo: districts and seats, land classes, plan targets."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DOMAIN_DIR = Path(__file__).resolve().parent / "domain_data"
REGION_CODE = "500000"
REGION_NAME = "重庆市"


@dataclass(frozen=True)
class District:
    code: str
    name_zh: str
    kind: str  # "district" (区) or "county" (县)
    seat_lon_gcj02: float
    seat_lat_gcj02: float


@dataclass(frozen=True)
class LandClass:
    code: str
    name_zh: str
    name_en: str
    group_code: str
    group_name_zh: str
    group_name_en: str
    three_category: str  # agricultural | construction | unused


def _rows(name: str) -> list[dict[str, str]]:
    with (DOMAIN_DIR / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@cache
def districts() -> tuple[District, ...]:
    return tuple(
        District(r["code"], r["name_zh"], r["kind"], float(r["center_lon_gcj02"]), float(r["center_lat_gcj02"]))
        for r in _rows("districts.csv")
    )


@cache
def district_codes() -> tuple[str, ...]:
    return tuple(d.code for d in districts())


@cache
def land_classes() -> dict[str, LandClass]:
    return {r["code"]: LandClass(**r) for r in _rows("land_classes.csv")}


@cache
def plan_targets() -> tuple[dict[str, str], ...]:
    return tuple(_rows("plan_targets.csv"))

# The region's extent in CGCS2000 lon/lat (Chongqing spans about 105.29–110.19 E, 28.16–32.20 N), with a margin
# of about 10 km. Geometries outside it are quarantined by rule GEOM_OUTSIDE_REGION.
REGION_BBOX: tuple[float, float, float, float] = (105.18, 28.06, 110.30, 32.30)
