"""JSON endpoints of the twin viewer (/twin/api): attributes, districts, indicators, conflicts, search, layers.

No token: the viewer runs on the governance-center network; the audit middleware records every call. Map layers
and parcel lookups come from `twin_viewer.maptiles`, building tiles from the tiles build's `twin/manifest.json`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from twin_viewer.server.errors import ApiError
from twin_viewer.server.responses import GEOJSON, json_response
from twin_viewer.server.twin_data import TwinData
from twin_viewer.server.viewer import maptiles_module, twin_dir

router = APIRouter()
DISTRICT_CODE = re.compile(r"^\d{6}$")
PARCEL_ID = re.compile(r"^[0-9A-Za-z_-]{4,40}$")


def data(request: Request) -> TwinData:
    return request.app.state.twin_data


def _tiles_manifest() -> dict[str, Any] | None:
    path = twin_dir() / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ApiError(500, f"{path} is not valid JSON ({exc}); rebuild the twin tiles") from exc


def _maptiles_available() -> bool:
    try:
        maptiles_module()
    except ApiError:
        return False
    return True


@router.get("/manifest")
def manifest(request: Request) -> Response:
    """What the page can show: the tiles build's manifest plus the lake's build id, survey years and region."""
    twin = data(request)
    tiles = _tiles_manifest() or {}
    build_id = twin.build_id()
    region = tiles.get("region")
    if region is None and (box := twin.region_bbox()) is not None:
        region = dict(zip(("west", "south", "east", "north"), box, strict=True))
    return json_response({
        "build_id": build_id, "tiles_build_id": tiles.get("build_id"), "built_at": tiles.get("built_at"),
        "tiles_current": tiles.get("build_id") == build_id if tiles else False,
        "buildings": tiles.get("buildings"),
        "terrain": tiles.get("terrain") or {"available": False, "layer": None,
                                            "warning": "the twin tiles have not been built yet"},
        "region": region, "maptiles": (maps := _maptiles_available()),
        "survey_years": list(maptiles_module().survey_years()) if maps else [],
    })


@router.get("/buildings/{building_id}")
def building(request: Request, building_id: str) -> Response:
    row = data(request).building(building_id)
    if row is None:
        raise ApiError(404, f"no building with id {building_id!r} in silver/buildings")
    return json_response(row)


@router.get("/parcels/{parcel_id}")
def parcel(request: Request, parcel_id: str) -> Response:
    row = data(request).parcel(parcel_id) if PARCEL_ID.match(parcel_id) else None
    if row is None:
        raise ApiError(404, f"no parcel with id {parcel_id!r} in gold/one_map_parcels or silver/parcels")
    return json_response(row)


@router.get("/parcel_at")
def parcel_at(lon: float = Query(ge=-180, le=180), lat: float = Query(ge=-90, le=90),
              year: int | None = None) -> Response:
    try:
        row = maptiles_module().parcel_at(lon, lat, year=year)
    except KeyError as exc:  # maptiles.UnknownLayerError: a survey year without parcels
        raise ApiError(404, str(exc)) from exc
    if row is None:
        raise ApiError(404, f"no parcel at {lon:.6f}, {lat:.6f}" + (f" in {year}" if year else ""))
    return json_response(row)


@router.get("/districts")
def districts(request: Request) -> Response:
    return json_response(data(request).districts())


@router.get("/indicators")
def indicators(request: Request) -> Response:
    body = data(request).indicators()
    if body is None:
        raise ApiError(404, "no published one map yet: run `onemap build` (or `onemap demo`) first")
    return json_response(body)


@router.get("/conflicts")
def conflicts(request: Request, limit: int = Query(200, ge=1, le=10_000), rule: str | None = None,
              district: str | None = None) -> Response:
    rows = [r for r in data(request).conflicts()
            if (rule is None or r["rule_id"] == rule) and (district is None or r["district_code"] == district)]
    return json_response({"total": len(rows), "conflicts": rows[:limit]})


@router.get("/search")
def search(request: Request, q: str = Query(min_length=1, max_length=100), limit: int = Query(20, ge=1, le=100)) \
        -> Response:
    """Districts by code or name, then buildings and parcels by id: each hit with a centre and bbox to fly to."""
    twin, text = data(request), q.strip()
    hits: list[dict[str, Any]] = []
    for d in twin.districts():
        if text == d["code"] or (not DISTRICT_CODE.match(text) and text.lower() in (d["name"] or "").lower()):
            hits.append({"kind": "district", "id": d["code"], "label": d["name"], "centre": d["centre"],
                         "bbox": d["bbox"]})
    for b in twin.search_buildings(text, limit):
        hits.append({"kind": "building", "id": b["building_id"], "label": b.get("name") or b["building_id"],
                     "centre": b["centre"], "bbox": b["bbox"]})
    if PARCEL_ID.match(text) and (p := twin.parcel(text)) is not None:
        hits.append({"kind": "parcel", "id": text, "label": f"{text} ({p['district_code']})", "centre": p["centre"],
                     "bbox": p["bbox"]})
    return json_response({"query": text, "results": hits[:limit]})


@router.get("/layers/{name}.geojson")
def layer(name: str) -> Response:
    try:
        collection = maptiles_module().vector_layer(name)
    except KeyError as exc:
        raise ApiError(404, f"no vector layer {name!r} ({exc})") from exc
    return json_response(collection, media_type=GEOJSON)


@router.get("/legend")
def legend() -> Response:
    return json_response(maptiles_module().legend())
