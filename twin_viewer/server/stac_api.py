"""STAC API 1.0 (core, collections, features, item-search) over silver/stac_items and silver/stac_assets.

Items are rebuilt from the lake rows: geometry from WKB, properties and extensions from the item's stored JSON,
assets from stac_assets; links point back at this API. Reading the catalog needs a full grant on stac_items
(stac_assets is added when granted). Paging is by offset in `next` links (GET query or POST body). Search takes
`bbox` or `intersects` (a GeoJSON geometry: URL-encoded JSON on GET, an object on POST), never both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
import shapely
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator
from shapely.geometry.base import BaseGeometry
from starlette.concurrency import run_in_threadpool

from lake.access.catalog import Catalog
from lake.registry import STAC_ITEMS
from twin_viewer.server.deps import current_catalog
from twin_viewer.server.errors import ApiError, not_granted
from twin_viewer.server.filters import bbox_clause, time_clause, where
from twin_viewer.server.params import (MAX_GEOJSON_BYTES, MAX_INTEGER, check_id, checked_query, parse_bbox,
                                      parse_datetime, parse_intersects, parse_limit, parse_names, parse_offset)
from twin_viewer.server.responses import GEOJSON, base_url, json_response, request_link

router = APIRouter()

STAC_VERSION = "1.0.0"
API = "https://api.stacspec.org/v1.0.0"
CONFORMANCE = [f"{API}/core", f"{API}/collections", f"{API}/ogcapi-features", f"{API}/item-search",
               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"]
ITEMS, ASSETS = "stac_items", "stac_assets"
PAGE_PARAMS = {"bbox", "datetime", "limit", "offset"}
SEARCH_PARAMS = PAGE_PARAMS | {"intersects", "collections", "ids"}


class SearchBody(BaseModel):
    """POST /search body (STAC API item-search). Strict JSON types (no "10" for 10, no true for 1); bounds are
    checked by the same parsers as GET's."""

    model_config = ConfigDict(extra="forbid", strict=True)
    bbox: list[float] | None = None
    intersects: dict[str, Any] | None = None
    datetime: str | None = None
    collections: list[str] | None = None
    ids: list[str] | None = None
    limit: int | None = None
    offset: int | None = None
    _geometry: BaseGeometry | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _parse_intersects(self) -> SearchBody:
        """Parsed while the body is validated: a bad geometry is a 400 like any bad field, and the handler (and the
        audit record it writes) only ever sees a checked one."""
        try:
            self._geometry = parse_intersects(self.intersects)
        except ApiError as exc:
            raise ValueError(exc.detail) from None
        return self

    @property
    def geometry(self) -> BaseGeometry | None:
        return self._geometry


def _require_stac_grant(catalog: Catalog) -> None:
    grant = catalog.grant_for(ITEMS)
    if grant is None or set(grant.columns) != set(STAC_ITEMS.schema.names):
        raise not_granted("table", "silver/stac_items")


def _root(request: Request) -> str:
    return f"{base_url(request)}/stac"


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _collection_docs(catalog: Catalog, root: str, only: str | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT collection, count(*), min(bbox_xmin), min(bbox_ymin), max(bbox_xmax), max(bbox_ymax), "
           "min(coalesce(start_datetime, datetime)), max(coalesce(end_datetime, datetime)) FROM stac_items"
           + (" WHERE collection = ?" if only else "") + " GROUP BY collection ORDER BY collection")
    with catalog.cursor() as cursor:
        rows = cursor.execute(sql, [only] if only else []).fetchall()
    return [{
        "type": "Collection", "stac_version": STAC_VERSION, "id": cid, "title": cid,
        "description": f"Imagery and elevation items of {cid} in the OneMap Twin lake ({count} items).",
        "license": "other",
        "extent": {"spatial": {"bbox": [[xmin, ymin, xmax, ymax]]}, "temporal": {"interval": [[_iso(t0), _iso(t1)]]}},
        "links": [{"rel": "self", "href": f"{root}/collections/{cid}", "type": "application/json"},
                  {"rel": "root", "href": f"{root}/", "type": "application/json"},
                  {"rel": "parent", "href": f"{root}/", "type": "application/json"},
                  {"rel": "items", "href": f"{root}/collections/{cid}/items", "type": GEOJSON}],
    } for cid, count, xmin, ymin, xmax, ymax, t0, t1 in rows]


def _assets(catalog: Catalog, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    if not keys or catalog.grant_for(ASSETS) is None:
        return {}
    wanted = set(keys)
    placeholders = ", ".join("?" for _ in keys)
    with catalog.cursor() as cursor:
        rows = cursor.execute(
            f"SELECT collection, item_id, asset_key, href, media_type, roles, title FROM stac_assets "
            f"WHERE item_id IN ({placeholders}) ORDER BY asset_key", [k[1] for k in keys]).fetchall()
    assets: dict[tuple[str, str], dict[str, Any]] = {}
    for collection, item_id, key, href, media_type, roles, title in rows:
        if (collection, item_id) not in wanted:
            continue
        asset = {"href": href, "type": media_type, "roles": json.loads(roles) if roles else None, "title": title}
        assets.setdefault((collection, item_id), {})[key] = {k: v for k, v in asset.items() if v is not None}
    return assets


def _items(catalog: Catalog, root: str, clauses: list[str], params: list[Any], limit: int,
           offset: int) -> list[dict[str, Any]]:
    sql = ("SELECT collection, item_id, datetime, stac_version, stac_extensions, properties, "
           "ST_AsGeoJSON(ST_GeomFromWKB(geometry)), bbox_xmin, bbox_ymin, bbox_xmax, bbox_ymax FROM stac_items"
           f"{where(clauses)} ORDER BY collection, item_id LIMIT ? OFFSET ?")
    with catalog.cursor() as cursor:
        rows = cursor.execute(sql, [*params, limit, offset]).fetchall()
    assets = _assets(catalog, [(r[0], r[1]) for r in rows])
    items = []
    for collection, item_id, dt, version, extensions, props, geometry, *bbox in rows:
        properties = json.loads(props) if props else {}
        properties.setdefault("datetime", _iso(dt))
        url = f"{root}/collections/{collection}/items/{item_id}"
        items.append({
            "type": "Feature", "stac_version": version or STAC_VERSION,
            "stac_extensions": json.loads(extensions) if extensions else [], "id": item_id, "collection": collection,
            "geometry": orjson.Fragment(geometry) if geometry else None, "bbox": bbox, "properties": properties,
            "assets": assets.get((collection, item_id), {}),
            "links": [{"rel": "self", "href": url, "type": GEOJSON},
                      {"rel": "collection", "href": f"{root}/collections/{collection}", "type": "application/json"},
                      {"rel": "parent", "href": f"{root}/collections/{collection}", "type": "application/json"},
                      {"rel": "root", "href": f"{root}/", "type": "application/json"}],
        })
    return items


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    matched: int
    limit: int
    offset: int

    @property
    def has_next(self) -> bool:
        """Also false where the next offset would pass the parsers' bound (so no link leads to a 400)."""
        return self.offset + len(self.items) < self.matched and self.offset + self.limit <= MAX_INTEGER


def _intersects_clause(geometry: BaseGeometry | None) -> tuple[list[str], list[Any]]:
    """The geometry's bounds first (file and row-group skipping on the bbox_* columns), then the exact test."""
    if geometry is None:
        return [], []
    clauses, params = bbox_clause(geometry.bounds)
    return ([*clauses, "ST_Intersects(ST_GeomFromWKB(geometry), ST_GeomFromWKB(?))"],
            [*params, shapely.to_wkb(geometry)])


def _search(request: Request, catalog: Catalog, *, bbox: Any, intersects: BaseGeometry | None, datetime: str | None,
            collections: Any, ids: Any, limit: Any, offset: Any) -> Page:
    """Raw parameter values (query text or body JSON) in, each parsed and bounded here; `intersects` comes parsed."""
    _require_stac_grant(catalog)
    config = request.app.state.config
    limit_n = parse_limit(limit, config.items_default_limit, config.items_max_limit)
    offset_n = parse_offset(offset)
    box = parse_bbox(bbox)
    if box is not None and intersects is not None:
        raise ApiError(400, "bbox and intersects: give one or the other, not both (STAC API item search)")
    clauses, params = bbox_clause(box)
    for more_sql, more_params in (_intersects_clause(intersects),
                                  time_clause(parse_datetime(datetime), "coalesce(start_datetime, datetime)",
                                              "coalesce(end_datetime, datetime)")):
        clauses, params = clauses + more_sql, params + more_params
    for column, values in (("collection", parse_names("collections", collections)),
                           ("item_id", parse_names("ids", ids))):
        if values is not None:
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
    items = _items(catalog, _root(request), clauses, params, limit_n, offset_n)
    with catalog.cursor() as cursor:
        matched = cursor.execute(f"SELECT count(*) FROM stac_items{where(clauses)}", params).fetchone()[0]
    request.state.audit["rows"] = len(items)
    return Page(items, matched, limit_n, offset_n)


def _item_collection(page: Page, links: list[dict[str, Any]]) -> Response:
    return json_response({"type": "FeatureCollection", "features": page.items, "links": links,
                          "numberMatched": page.matched, "numberReturned": len(page.items)}, GEOJSON)


@router.get("/")
def landing(request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    _require_stac_grant(catalog)
    root = _root(request)
    children = [{"rel": "child", "href": f"{root}/collections/{c['id']}", "type": "application/json"}
                for c in _collection_docs(catalog, root)]
    return json_response({
        "type": "Catalog", "stac_version": STAC_VERSION, "id": "onemap-imagery", "title": "OneMap Twin imagery",
        "description": "Imagery scenes and DEMs of the Chongqing one map (silver/stac_items).",
        "conformsTo": CONFORMANCE,
        "links": [{"rel": "self", "href": f"{root}/", "type": "application/json"},
                  {"rel": "root", "href": f"{root}/", "type": "application/json"},
                  {"rel": "conformance", "href": f"{root}/conformance", "type": "application/json"},
                  {"rel": "data", "href": f"{root}/collections", "type": "application/json"},
                  {"rel": "search", "href": f"{root}/search", "type": GEOJSON, "method": "GET"},
                  {"rel": "search", "href": f"{root}/search", "type": GEOJSON, "method": "POST"}, *children]})


@router.get("/conformance")
def conformance(catalog: Catalog = Depends(current_catalog)) -> Response:
    _require_stac_grant(catalog)
    return json_response({"conformsTo": CONFORMANCE})


@router.get("/collections")
def collections(request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    _require_stac_grant(catalog)
    root = _root(request)
    docs = _collection_docs(catalog, root)
    request.state.audit["rows"] = len(docs)
    return json_response({"collections": docs, "links": [
        {"rel": "self", "href": f"{root}/collections", "type": "application/json"},
        {"rel": "root", "href": f"{root}/", "type": "application/json"}]})


@router.get("/collections/{collection_id}")
def collection(collection_id: str, request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    _require_stac_grant(catalog)
    docs = _collection_docs(catalog, _root(request), check_id("collection", collection_id))
    if not docs:
        raise ApiError(404, f"no STAC collection {collection_id!r}")
    return json_response(docs[0])


@router.get("/collections/{collection_id}/items")
def collection_items(collection_id: str, request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    q = checked_query(request, PAGE_PARAMS)
    page = _search(request, catalog, bbox=q.get("bbox"), intersects=None, datetime=q.get("datetime"),
                   collections=[collection_id], ids=None, limit=q.get("limit"), offset=q.get("offset"))
    links = [{"rel": "self", "href": request_link(request), "type": GEOJSON}]
    if page.has_next:
        links.append({"rel": "next", "href": request_link(request, offset=page.offset + page.limit), "type": GEOJSON})
    return _item_collection(page, links)


@router.get("/collections/{collection_id}/items/{item_id}")
def item(collection_id: str, item_id: str, request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    page = _search(request, catalog, bbox=None, intersects=None, datetime=None, collections=[collection_id],
                   ids=[item_id], limit=1, offset=0)
    if not page.items:
        raise ApiError(404, f"no item {item_id!r} in STAC collection {collection_id!r}")
    return json_response(page.items[0], GEOJSON)


@router.get("/search")
def search_get(request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    q = checked_query(request, SEARCH_PARAMS)
    page = _search(request, catalog, bbox=q.get("bbox"), intersects=parse_intersects(q.get("intersects")),
                   datetime=q.get("datetime"), collections=q.get("collections"), ids=q.get("ids"),
                   limit=q.get("limit"), offset=q.get("offset"))
    links = [{"rel": "self", "href": request_link(request), "type": GEOJSON},
             {"rel": "root", "href": f"{_root(request)}/", "type": "application/json"}]
    if page.has_next:
        links.append({"rel": "next", "href": request_link(request, offset=page.offset + page.limit),
                      "type": GEOJSON, "method": "GET"})
    return _item_collection(page, links)


async def _search_body(request: Request) -> SearchBody:
    """At most MAX_GEOJSON_BYTES read (413 beyond, in the API's error shape), then parsed as strict JSON: no NaN, and
    nesting bounded by the parser, so no body can reach a recursion or serialisation limit further on."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_GEOJSON_BYTES:
            raise ApiError(413, f"the search body is larger than {MAX_GEOJSON_BYTES:,} bytes")
    try:
        return SearchBody.model_validate_json(bytes(raw))
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


@router.post("/search", openapi_extra={"requestBody": {
    "required": True, "content": {"application/json": {"schema": SearchBody.model_json_schema()}}}})
async def search_post(request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    body = await _search_body(request)
    request.state.audit["parameters"] = body.model_dump_json(exclude_none=True)
    page = await run_in_threadpool(
        _search, request, catalog, bbox=body.bbox, intersects=body.geometry, datetime=body.datetime,
        collections=body.collections, ids=body.ids, limit=body.limit, offset=body.offset)
    links = [{"rel": "root", "href": f"{_root(request)}/", "type": "application/json"}]
    if page.has_next:
        next_body = {**body.model_dump(exclude_none=True), "offset": page.offset + page.limit, "limit": page.limit}
        links.append({"rel": "next", "href": f"{_root(request)}/search", "type": GEOJSON, "method": "POST",
                      "body": next_body, "merge": False})
    return _item_collection(page, links)
