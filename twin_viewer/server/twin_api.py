"""JSON endpoints of the twin viewer (/twin/api): attributes, districts, indicators, conflicts, search, layers.

Every call needs a department (bearer token or viewer session) and answers only from its grants (twin_grants):
403 for what needs a table it was not granted, rows of other districts are not there (404 for one asked by id),
columns it was not granted are left out. The audit middleware records every call. Map layers and parcel lookups
come from `twin_viewer.maptiles`, building tiles from the tiles build's `twin/manifest.json`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from lake.registry import BUILDINGS, DISTRICTS, GOLD_CONFLICTS, GOLD_DISTRICT_INDICATORS, GOLD_ONE_MAP_PARCELS, PARCELS
from twin_viewer.server.deps import twin_access
from twin_viewer.server.errors import ApiError
from twin_viewer.server.responses import GEOJSON, json_response
from twin_viewer.server.twin_data import TwinData
from twin_viewer.server.twin_grants import LAYERS, TWIN_TABLES, VECTOR_LAYERS, TwinAccess, granted_rows
from twin_viewer.server.viewer import maptiles_module, parcel_source, parcel_years, twin_dir

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


def _not_granted_terrain() -> dict[str, Any]:
    return {"available": False, "layer": None,
            "warning": f"not granted: the terrain needs a grant on {LAYERS['terrain'].spec.key}"}


@router.get("/manifest")
def manifest(request: Request, access: TwinAccess = Depends(twin_access)) -> Response:
    """What the page can show the department: which layers its grants allow, the tiles build's manifest for those,
    the lake's build id (with a gold grant), its survey years and region."""
    if not access.any_layer():
        raise ApiError(403, f"your department ({access.department.name}) has no grant the twin can show; an operator "
                            f"grants tables with `onemap access grant` (the twin shows {', '.join(TWIN_TABLES)})")
    twin, maps = data(request), _maptiles_available()
    years = parcel_years(access) if maps else []
    layers = {name: access.layer(name) is not None for name in LAYERS} | {"parcels": bool(years)}
    tiles = (_tiles_manifest() or {}) if layers["buildings"] or layers["terrain"] else {}
    build_id = twin.build_id()
    districts = access.table(DISTRICTS, ("geometry",))
    box = twin.region_bbox(districts) if districts is not None else None
    return json_response({
        "department": access.department.name,
        "build_id": build_id if any(key.startswith("gold/") for key in access.department.grants) else None,
        "tiles_build_id": tiles.get("build_id"), "built_at": tiles.get("built_at"),
        "tiles_current": tiles.get("build_id") == build_id if tiles else False,
        "buildings": tiles.get("buildings") if layers["buildings"] else None,
        "terrain": (tiles.get("terrain") or {"available": False, "layer": None,
                                             "warning": "the twin tiles have not been built yet"})
        if layers["terrain"] else _not_granted_terrain(),
        "region": dict(zip(("west", "south", "east", "north"), box, strict=True)) if box else None,
        "maptiles": maps, "survey_years": years, "layers": layers,
    })


@router.get("/buildings/{building_id}")
def building(request: Request, building_id: str, access: TwinAccess = Depends(twin_access)) -> Response:
    grant = access.require(access.table(BUILDINGS, ("building_id",)), "building attributes", BUILDINGS)
    row = data(request).building(building_id, grant)
    if row is None:
        raise ApiError(404, f"no building with id {building_id!r} in silver/buildings")
    return json_response(row)


@router.get("/parcels/{parcel_id}")
def parcel(request: Request, parcel_id: str, access: TwinAccess = Depends(twin_access)) -> Response:
    """The parcel's one-map row (gold grant) and survey rows (silver grant), each as far as granted."""
    gold, survey = access.table(GOLD_ONE_MAP_PARCELS, ("parcel_id",)), access.table(PARCELS, ("parcel_id",))
    access.require(gold or survey, "parcel attributes (with parcel_id)", GOLD_ONE_MAP_PARCELS)
    row = data(request).parcel(parcel_id, gold, survey) if PARCEL_ID.match(parcel_id) else None
    if row is None:
        raise ApiError(404, f"no parcel with id {parcel_id!r} in gold/one_map_parcels or silver/parcels")
    return json_response(row)


@router.get("/parcel_at")
def parcel_at(lon: float = Query(ge=-180, le=180), lat: float = Query(ge=-90, le=90), year: int | None = None,
              access: TwinAccess = Depends(twin_access)) -> Response:
    """The parcel under a point in the survey year's table, among the grant's districts, with its granted columns."""
    grant = parcel_source(access, year)
    try:
        row = maptiles_module().parcel_at(lon, lat, year=year, districts=grant.districts)
    except KeyError as exc:  # maptiles.UnknownLayerError: a survey year without parcels
        raise ApiError(404, str(exc)) from exc
    granted = granted_rows(grant, [row]) if row is not None else []
    if not granted:
        raise ApiError(404, f"no parcel at {lon:.6f}, {lat:.6f}" + (f" in {year}" if year else ""))
    return json_response(granted[0])


@router.get("/districts")
def districts(request: Request, access: TwinAccess = Depends(twin_access)) -> Response:
    return json_response(data(request).districts(access.require(access.table(DISTRICTS), "districts", DISTRICTS)))


@router.get("/indicators")
def indicators(request: Request, access: TwinAccess = Depends(twin_access)) -> Response:
    grant = access.require(access.table(GOLD_DISTRICT_INDICATORS), "the indicators", GOLD_DISTRICT_INDICATORS)
    body = data(request).indicators(grant)
    if body is None:
        raise ApiError(404, "no published one map yet: run `onemap build` (or `onemap demo`) first")
    return json_response(body)


@router.get("/conflicts")
def conflicts(request: Request, limit: int = Query(200, ge=1, le=10_000), rule: str | None = None,
              district: str | None = None, access: TwinAccess = Depends(twin_access)) -> Response:
    """Published conflicts, errors first then by area; filtering by rule or district needs that column granted."""
    needed = [c for c, v in (("rule_id", rule), ("district_code", district)) if v is not None]
    grant = access.require(access.table(GOLD_CONFLICTS, needed), "conflicts" + (f" by {', '.join(needed)}" if needed
                                                                                else ""), GOLD_CONFLICTS)
    rows = [r for r in data(request).conflicts(grant)
            if (rule is None or r["rule_id"] == rule) and (district is None or r["district_code"] == district)]
    return json_response({"total": len(rows), "conflicts": rows[:limit]})


@router.get("/search")
def search(request: Request, q: str = Query(min_length=1, max_length=100), limit: int = Query(20, ge=1, le=100),
           access: TwinAccess = Depends(twin_access)) -> Response:
    """Districts by code or name, then buildings and parcels by id (each among what the department was granted):
    each hit with a centre and bbox to fly to."""
    twin, text = data(request), q.strip()
    district_grant, building_grant = access.table(DISTRICTS), access.table(BUILDINGS)
    gold, survey = access.table(GOLD_ONE_MAP_PARCELS, ("parcel_id",)), access.table(PARCELS, ("parcel_id",))
    access.require(district_grant or building_grant or gold or survey, "search (districts, buildings or parcels)",
                   DISTRICTS)
    hits: list[dict[str, Any]] = []
    for d in twin.districts(district_grant) if district_grant else []:
        name = (d["name"] or "").lower()
        if (d["code"] and text == d["code"]) or (name and not DISTRICT_CODE.match(text) and text.lower() in name):
            hits.append({"kind": "district", "id": d["code"], "label": d["name"], "centre": d["centre"],
                         "bbox": d["bbox"]})
    for b in twin.search_buildings(text, limit, building_grant) if building_grant else []:
        hits.append({"kind": "building", "id": b.get("building_id"), "label": b.get("name") or b.get("building_id"),
                     "centre": b["centre"], "bbox": b["bbox"]})
    if (gold or survey) and PARCEL_ID.match(text) and (p := twin.parcel(text, gold, survey)) is not None:
        district = f" ({p['district_code']})" if p["district_code"] else ""
        hits.append({"kind": "parcel", "id": text, "label": text + district, "centre": p["centre"], "bbox": p["bbox"]})
    return json_response({"query": text, "results": hits[:limit]})


@router.get("/layers/{name}.geojson")
def layer(name: str, access: TwinAccess = Depends(twin_access)) -> Response:
    """A small vector layer: its granted districts' features with their granted properties."""
    if name not in VECTOR_LAYERS:
        raise ApiError(404, f"no vector layer {name!r}; layers: {', '.join(VECTOR_LAYERS)}")
    grant = access.require_layer(VECTOR_LAYERS[name])
    try:
        collection = maptiles_module().vector_layer(name)
    except KeyError as exc:
        raise ApiError(404, f"no vector layer {name!r} ({exc})") from exc
    features = [{**f, "properties": props} for f in collection["features"]
                for props in granted_rows(grant, [f["properties"]])]
    return json_response({**collection, "features": features}, media_type=GEOJSON)


@router.get("/legend")
def legend(access: TwinAccess = Depends(twin_access)) -> Response:
    """Land-class colours: part of the parcels layer, so for departments that may see it in some survey year."""
    access.require(access.layer("parcels") or access.layer("parcels", PARCELS), "the land-class legend (parcels)",
                   GOLD_ONE_MAP_PARCELS)
    return json_response(maptiles_module().legend())
