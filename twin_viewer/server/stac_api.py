"""STAC API 1.0 (core, collections, features, item-search) over silver/stac_items and silver/stac_assets.

Items are rebuilt from the lake rows: geometry from WKB, properties and extensions from the item's stored JSON,
assets from stac_assets; links point back at this API. Reading the catalog needs a full grant on stac_items
(stac_assets is added when granted). Paging is by offset in `next` links (GET query or POST body).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from lake.access.catalog import Catalog
from lake.registry import STAC_ITEMS
from twin_viewer.server.deps import current_catalog
from twin_viewer.server.errors import ApiError, not_granted
from twin_viewer.server.filters import bbox_clause, time_clause, where
from twin_viewer.server.responses import GEOJSON, json_response
from twin_viewer.server.params import parse_bbox, parse_datetime, parse_limit, parse_offset

router = APIRouter()

STAC_VERSION = "1.0.0"
API = "https://api.stacspec.org/v1.0.0"
CONFORMANCE = [f"{API}/core", f"{API}/collections", f"{API}/ogcapi-features", f"{API}/item-search",
               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
               "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"]
ITEMS, ASSETS = "stac_items", "stac_assets"


class SearchBody(BaseModel):
    """POST /search body (STAC API item-search)."""

    model_config = ConfigDict(extra="forbid")
    bbox: list[float] | None = None
    datetime: str | None = None
    collections: list[str] | None = None
    ids: list[str] | None = None
    limit: int | None = None
    offset: int | None = None


def _require_stac_grant(catalog: Catalog) -> None:
    grant = catalog.grant_for(ITEMS)
    if grant is None or set(grant.columns) != set(STAC_ITEMS.schema.names):
        raise not_granted("table", "silver/stac_items")


def _root(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/stac"


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
        return self.offset + len(self.items) < self.matched


def _search(request: Request, catalog: Catalog, *, bbox: Any, datetime: str | None, collections: list[str] | None,
            ids: list[str] | None, limit: Any, offset: Any) -> Page:
    _require_stac_grant(catalog)
    config = request.app.state.config
    limit_n = parse_limit(limit, config.items_default_limit, config.items_max_limit)
    offset_n = parse_offset(offset)
    clauses, params = bbox_clause(parse_bbox(bbox))
    time_sql, time_params = time_clause(parse_datetime(datetime), "coalesce(start_datetime, datetime)",
                                         "coalesce(end_datetime, datetime)")
    clauses, params = clauses + time_sql, params + time_params
    for column, values in (("collection", collections), ("item_id", ids)):
        if values:
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


def _split(value: str | None) -> list[str] | None:
    return [v for v in value.split(",") if v] if value else None


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
    docs = _collection_docs(catalog, _root(request), collection_id)
    if not docs:
        raise ApiError(404, f"no STAC collection {collection_id!r}")
    return json_response(docs[0])


@router.get("/collections/{collection_id}/items")
def collection_items(collection_id: str, request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    q = request.query_params
    page = _search(request, catalog, bbox=q.get("bbox"), datetime=q.get("datetime"), collections=[collection_id],
                   ids=None, limit=q.get("limit"), offset=q.get("offset"))
    links = [{"rel": "self", "href": str(request.url), "type": GEOJSON}]
    if page.has_next:
        links.append({"rel": "next", "href": str(request.url.include_query_params(offset=page.offset + page.limit)),
                      "type": GEOJSON})
    return _item_collection(page, links)


@router.get("/collections/{collection_id}/items/{item_id}")
def item(collection_id: str, item_id: str, request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    page = _search(request, catalog, bbox=None, datetime=None, collections=[collection_id], ids=[item_id], limit=1,
                   offset=0)
    if not page.items:
        raise ApiError(404, f"no item {item_id!r} in STAC collection {collection_id!r}")
    return json_response(page.items[0], GEOJSON)


@router.get("/search")
def search_get(request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    q = request.query_params
    page = _search(request, catalog, bbox=q.get("bbox"), datetime=q.get("datetime"),
                   collections=_split(q.get("collections")), ids=_split(q.get("ids")), limit=q.get("limit"),
                   offset=q.get("offset"))
    links = [{"rel": "self", "href": str(request.url), "type": GEOJSON},
             {"rel": "root", "href": f"{_root(request)}/", "type": "application/json"}]
    if page.has_next:
        links.append({"rel": "next", "href": str(request.url.include_query_params(offset=page.offset + page.limit)),
                      "type": GEOJSON, "method": "GET"})
    return _item_collection(page, links)


@router.post("/search")
def search_post(body: SearchBody, request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    request.state.audit["parameters"] = body.model_dump_json(exclude_none=True)
    page = _search(request, catalog, bbox=body.bbox, datetime=body.datetime, collections=body.collections,
                   ids=body.ids, limit=body.limit, offset=body.offset)
    links = [{"rel": "root", "href": f"{_root(request)}/", "type": "application/json"}]
    if page.has_next:
        next_body = {**body.model_dump(exclude_none=True), "offset": page.offset + page.limit, "limit": page.limit}
        links.append({"rel": "next", "href": f"{_root(request)}/search", "type": GEOJSON, "method": "POST",
                      "body": next_body, "merge": False})
    return _item_collection(page, links)
