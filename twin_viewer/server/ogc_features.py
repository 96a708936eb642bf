"""OGC API – Features Part 1 (Core, GeoJSON) over every lake table granted to the department.

Collections are the department's granted, existing tables, so gold tables appear as soon as they are registered,
written and granted; a table without (granted) geometry is served with null geometries, as GIS clients expect of
attribute tables such as gold/district_indicators. Features are read through the department's catalog views, so column
and district grants hold here exactly as in SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from lake.access.catalog import Catalog, literal, quote
from lake.access.grants import TableGrant
from lake.duckdb_engine import view_names
from lake.registry import BBOX_COLUMNS
from twin_viewer.server.deps import current_catalog
from twin_viewer.server.errors import ApiError, not_granted
from twin_viewer.server.filters import bbox_clause, time_clause, where
from twin_viewer.server.params import (MAX_INTEGER, check_id, checked_query, parse_bbox, parse_datetime, parse_limit,
                                      parse_names, parse_offset)
from twin_viewer.server.responses import GEOJSON, base_url, json_response, request_link

router = APIRouter()

OGC = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf"
CONFORMANCE = [f"{OGC}/core", f"{OGC}/geojson"]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
ID_SEPARATOR = "~"
TIME_COLUMN = "datetime"
ITEM_PARAMS = {"bbox", "bbox-crs", "datetime", "limit", "offset", "properties", "f"}


def collections_of(catalog: Catalog) -> dict[str, TableGrant]:
    """Collection id (the table's SQL view name) → grant, one per granted table."""
    return {view: grant for view, grant in catalog.views.items() if view == view_names(grant.spec)[0]}


def _collection(catalog: Catalog, collection_id: str) -> TableGrant:
    grant = collections_of(catalog).get(check_id("collection", collection_id))
    if grant is None:
        raise not_granted("collection", collection_id)
    return grant


def _extent(catalog: Catalog, view: str) -> list[float] | None:
    if not catalog.views[view].has_geometry:
        return None
    with catalog.cursor() as cursor:
        row = cursor.execute(
            f"SELECT min(bbox_xmin), min(bbox_ymin), max(bbox_xmax), max(bbox_ymax) FROM {quote(view)}").fetchone()
    return None if row is None or row[0] is None else [float(v) for v in row]


def collection_doc(base: str, view: str, grant: TableGrant, extent: list[float] | None) -> dict[str, Any]:
    url = f"{base}/collections/{view}"
    doc: dict[str, Any] = {
        "id": view, "title": grant.spec.key, "description": grant.spec.description, "itemType": "feature",
        "crs": [CRS84], "storageCrs": "http://www.opengis.net/def/crs/EPSG/0/4490",
        "links": [{"href": url, "rel": "self", "type": "application/json", "title": grant.spec.key},
                  {"href": f"{url}/items", "rel": "items", "type": GEOJSON, "title": "features"}],
    }
    if extent is not None:
        doc["extent"] = {"spatial": {"bbox": [extent], "crs": CRS84}}
    return doc


@router.get("/")
def landing(request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    base = base_url(request)
    return json_response({
        "title": "OneMap Twin",
        "description": "Chongqing natural-resources one map: OGC API – Features over the lake tables granted to your "
                       "department; STAC API at /stac; SQL at /sql.",
        "links": [{"href": f"{base}/", "rel": "self", "type": "application/json", "title": "this document"},
                  {"href": f"{base}/api", "rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.1",
                   "title": "the API definition"},
                  {"href": f"{base}/api.html", "rel": "service-doc", "type": "text/html", "title": "API documentation"},
                  {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json",
                   "title": "conformance classes"},
                  {"href": f"{base}/collections", "rel": "data", "type": "application/json", "title": "collections"},
                  {"href": f"{base}/stac", "rel": "related", "type": "application/json", "title": "STAC API"}]})


@router.get("/conformance")
def conformance(catalog: Catalog = Depends(current_catalog)) -> Response:
    return json_response({"conformsTo": CONFORMANCE})


@router.get("/collections")
def collections(request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    base = base_url(request)
    docs = [collection_doc(base, view, grant, _extent(catalog, view))
            for view, grant in sorted(collections_of(catalog).items())]
    request.state.audit["rows"] = len(docs)
    return json_response({"links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
                          "collections": docs})


@router.get("/collections/{collection_id}")
def collection(collection_id: str, request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    grant = _collection(catalog, collection_id)
    return json_response(collection_doc(base_url(request), collection_id, grant, _extent(catalog, collection_id)))


def _property_columns(grant: TableGrant, selection: str | None) -> list[str]:
    available = [c for c in grant.columns if c != "geometry" and c not in BBOX_COLUMNS]
    wanted = parse_names("properties", selection)
    if wanted is None:
        return available
    for name in wanted:
        if name not in available:
            raise not_granted("property", name)
    return wanted


def _id_columns(grant: TableGrant) -> list[str]:
    key = list(grant.spec.primary_key)
    return key if key and all(k in grant.columns for k in key) else []


def _json_value(grant: TableGrant, column: str) -> str:
    """A column as DuckDB renders it into JSON: blobs as hex, timestamps as RFC 3339."""
    field = grant.spec.schema.field(column)
    if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
        return f"hex({quote(column)})"
    if pa.types.is_timestamp(field.type):
        return f"strftime({quote(column)}, '%Y-%m-%dT%H:%M:%S.%fZ')"
    return quote(column)


def _features(catalog: Catalog, view: str, grant: TableGrant, properties: list[str], clauses: list[str],
              params: list[Any], limit: int, offset: int) -> list[bytes]:
    """Each feature as GeoJSON text, built inside DuckDB (no per-row Python objects: this is the hot path)."""
    ids = _id_columns(grant)
    props = ", ".join(f"{literal(c)}, {_json_value(grant, c)}" for c in properties)
    feature_id = f"'id', concat_ws('{ID_SEPARATOR}', {', '.join(f'CAST({quote(c)} AS VARCHAR)' for c in ids)}), " \
        if ids else ""
    geometry = "ST_AsGeoJSON(ST_GeomFromWKB(geometry))::JSON" if grant.has_geometry else "NULL"
    select = f"json_object('type', 'Feature', {feature_id}'geometry', {geometry}, 'properties', json_object({props}))"
    order = f" ORDER BY {', '.join(quote(c) for c in ids)}" if ids else ""
    sql = f"SELECT {select} FROM {quote(view)}{where(clauses)}{order} LIMIT ? OFFSET ?"
    with catalog.cursor() as cursor:  # a failure or limit is lake.access.sandbox.QueryRefused: a 400 naming it
        rows = cursor.execute(sql, [*params, limit, offset]).fetchall()
    return [row[0].encode() for row in rows]


def _feature_collection(features: list[bytes], links: list[dict[str, Any]]) -> Response:
    tail = {"links": links, "numberReturned": len(features),
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")}
    body = b'{"type":"FeatureCollection","features":[' + b",".join(features) + b"]," + orjson.dumps(tail)[1:]
    return Response(body, media_type=GEOJSON)


@router.get("/collections/{collection_id}/items")
def items(collection_id: str, request: Request, catalog: Catalog = Depends(current_catalog)) -> Response:
    grant = _collection(catalog, collection_id)
    query = checked_query(request, ITEM_PARAMS)
    if query.get("bbox-crs", CRS84) != CRS84:
        raise ApiError(400, f"bbox-crs: only {CRS84} is supported")
    config = request.app.state.config
    bbox = parse_bbox(query.get("bbox"))
    if bbox is not None and not grant.has_geometry:
        raise ApiError(400, f"bbox: collection {collection_id} has no geometry")
    interval = parse_datetime(query.get("datetime"))
    if interval is not None and TIME_COLUMN not in grant.columns:
        raise ApiError(400, f"datetime: collection {collection_id} has no time column")
    limit = parse_limit(query.get("limit"), config.items_default_limit, config.items_max_limit)
    offset = parse_offset(query.get("offset"))
    properties = _property_columns(grant, query.get("properties"))
    bbox_sql, bbox_params = bbox_clause(bbox)
    time_sql, time_params = time_clause(interval, quote(TIME_COLUMN), quote(TIME_COLUMN))
    features = _features(catalog, collection_id, grant, properties, bbox_sql + time_sql, bbox_params + time_params,
                         limit, offset)
    request.state.audit["rows"] = len(features)
    links = [{"href": request_link(request), "rel": "self", "type": GEOJSON, "title": "this page"},
             {"href": f"{base_url(request)}/collections/{collection_id}", "rel": "collection",
              "type": "application/json"}]
    if len(features) == limit and offset + limit <= MAX_INTEGER:
        links.append({"href": request_link(request, offset=offset + limit, limit=limit),
                      "rel": "next", "type": GEOJSON, "title": "next page"})
    if offset > 0:
        links.append({"href": request_link(request, offset=max(0, offset - limit), limit=limit),
                      "rel": "prev", "type": GEOJSON, "title": "previous page"})
    return _feature_collection(features, links)


@router.get("/collections/{collection_id}/items/{feature_id}")
def item(collection_id: str, feature_id: str, request: Request,
         catalog: Catalog = Depends(current_catalog)) -> Response:
    grant = _collection(catalog, collection_id)
    ids = _id_columns(grant)
    values = check_id("feature id", feature_id).split(ID_SEPARATOR)
    if not ids or len(values) != len(ids):
        raise ApiError(404, f"no feature {feature_id!r} in {collection_id}")
    clauses = [f"CAST({quote(c)} AS VARCHAR) = ?" for c in ids]
    features = _features(catalog, collection_id, grant, _property_columns(grant, None), clauses, values, 1, 0)
    request.state.audit["rows"] = len(features)
    if not features:
        raise ApiError(404, f"no feature {feature_id!r} in {collection_id}")
    base = base_url(request)
    feature = {**orjson.loads(features[0]), "links": [
        {"href": request_link(request), "rel": "self", "type": GEOJSON},
        {"href": f"{base}/collections/{collection_id}", "rel": "collection", "type": "application/json"}]}
    return json_response(feature, GEOJSON)
