"""The HTTP surface against a real uvicorn server: no parameter can push it into a 500, no header into lying.

Every numeric parameter of every OGC and STAC route, spelled badly in many ways, is a 400 naming the parameter;
`intersects` filters exactly as shapely says (GET and POST); a hostile Host, X-Forwarded-Host or Forwarded never
reaches a response; a configured public URL is what links carry; the OpenAPI pages hold no lake data.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import shapely
from shapely.geometry import box, mapping, shape

from lake.errors import OnemapError
from lake.settings import current_settings
from tests.api_server import DISTRICTS, STAC_COLLECTIONS, ApiServer, api_server
from twin_viewer.server.app import ApiConfig
from twin_viewer.server.params import MAX_INTEGER, MAX_NAMES, MAX_VERTICES
from twin_viewer.server.responses import HostPolicy, allow_host

CONFIG = ApiConfig(sql_timeout_s=10.0, sql_max_rows=1000, items_max_limit=500, audit_interval_s=60)
TIMEOUT = 60
EVIL = "evil.example.com"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server(tmp_path_factory.mktemp("hygiene") / "home", CONFIG) as server:
        yield server


def get(api: ApiServer, path: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    return httpx.get(api.url + path, headers={**api.headers("housing"), **(headers or {})}, params=params or None,
                     timeout=TIMEOUT)


def post_search(api: ApiServer, body: str | dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(f"{api.url}/stac/search", content=content, timeout=TIMEOUT,
                      headers={**api.headers("housing"), "Content-Type": "application/json", **(headers or {})})


def assert_refused(response: httpx.Response, status: int = 400, mentions: str | None = None) -> None:
    """A refusal in the API's error shape with a reason (never a 500, never a bare string)."""
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == {"code", "description"} and body["description"]
    if mentions is not None:
        assert mentions in body["description"], body["description"]


# --- every numeric parameter of every route, spelled badly -------------------------------------------------

BAD_INTEGERS = ["1e400", "-1", "99999999999999999999", "nan", "inf", "0x10", "", "1.5", "5;drop", " 5", "1_0", "٣",
                str(MAX_INTEGER + 1), "9" * 5000]
BAD_BBOXES = ["1e400,28.5,105.6,28.6", "-1", "99999999999999999999,28.5,105.6,28.6", "nan,28.5,105.6,28.6",
              "105.5,28.5,inf,28.6", "0x10,28.5,105.6,28.6", "", "105.5,28.5,105.6", "105.5,-91,105.6,28.6",
              "1_0,28.5,105.6,28.6", "106,28.5,-1,28.6", ",".join(["1"] * 1000), "105.5,28.5,105.6,28.6,1"]
BAD_DATETIMES = ["0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
                 "9999-12-31T23:59:59-14:00", "nan", "1e400", "-1", "99999999999999999999", "0x10", "",
                 "2024-02-01T00:00:00Z/2024-01-01T00:00:00Z", "../..", "2024-01-01T00:00:00Z/" + "9" * 300]
BAD_VALUES = {"limit": BAD_INTEGERS, "offset": BAD_INTEGERS, "bbox": BAD_BBOXES, "datetime": BAD_DATETIMES}
ROUTES = {  # route → its numeric parameters
    "/collections/parcels/items": ("limit", "offset", "bbox"),
    "/collections/stac_items/items": ("limit", "offset", "bbox", "datetime"),
    "/stac/search": ("limit", "offset", "bbox", "datetime"),
    "/stac/collections/sentinel-2-l2a/items": ("limit", "offset", "bbox", "datetime"),
}
CASES = [(route, param, value) for route, params in ROUTES.items() for param in params for value in BAD_VALUES[param]]


@pytest.mark.parametrize(("route", "param", "value"), CASES,
                         ids=[f"{r}-{p}-{v[:24]!r}" for r, p, v in CASES])
def test_bad_numeric_parameters_are_400_naming_the_parameter(api: ApiServer, route: str, param: str,
                                                            value: str) -> None:
    assert_refused(get(api, route, **{param: value}), mentions=param)


def test_the_bounds_themselves_are_served(api: ApiServer) -> None:
    """limit is capped at the page maximum up to the bound; the largest offset answers an empty page with no next."""
    page = get(api, "/collections/parcels/items", limit=str(MAX_INTEGER)).json()
    assert page["numberReturned"] == CONFIG.items_max_limit
    last = get(api, "/collections/parcels/items", offset=str(MAX_INTEGER)).json()
    assert last["features"] == [] and "next" not in {link["rel"] for link in last["links"]}
    stac = get(api, "/stac/search", offset=str(MAX_INTEGER), limit="1").json()
    assert stac["features"] == [] and "next" not in {link["rel"] for link in stac["links"]}
    everything = get(api, "/stac/search", datetime="0001-01-01T00:00:00Z/9999-12-31T23:59:59.999999Z", limit="100")
    assert everything.json()["numberMatched"] == sum(STAC_COLLECTIONS.values())


@pytest.mark.parametrize(("route", "query"), [
    ("/collections/parcels/items", "limit=5&limit=6"),
    ("/stac/search", "offset=0&offset=99999999999999999999"),
    ("/stac/search", "filter=1%3D1"),
    ("/stac/collections/sentinel-2-l2a/items", "intersects=%7B%7D"),  # not supported here: refused, not ignored
    ("/collections/parcels/items", "intersects=%7B%7D"),
    ("/stac/search", "collections=" + ",".join(["x"] * (MAX_NAMES + 1))),
    ("/stac/search", "ids=" + "x" * 2000),
    ("/stac/search", "collections="),
    ("/collections/parcels/items", "properties=" + ",".join(["parcel_id"] * (MAX_NAMES + 1))),
])
def test_repeated_unknown_and_oversized_list_parameters_are_400(api: ApiServer, route: str, query: str) -> None:
    assert_refused(httpx.get(f"{api.url}{route}?{query}", headers=api.headers("housing"), timeout=TIMEOUT))


def test_oversized_path_ids_are_400(api: ApiServer) -> None:
    for path in (f"/collections/parcels/items/{'G' * 2000}~2023", f"/collections/{'p' * 2000}/items",
                 f"/stac/collections/{'s' * 2000}", f"/stac/collections/dem-srtm/items/{'d' * 2000}"):
        assert_refused(get(api, path), mentions="longer than")


LIMIT_VALUES = ["1e400", "-1", "99999999999999999999", "NaN", "Infinity", '"0x10"', '""', '"10"', "true", "1.5", "[]",
                "{}", str(MAX_INTEGER + 1), "1" + "0" * 5000]
BODY_CASES = [
    *({"limit": v} for v in LIMIT_VALUES), *({"offset": v} for v in LIMIT_VALUES),
    *({"bbox": v} for v in ["[1e400,28.5,105.6,28.6]", "[NaN,28.5,105.6,28.6]", '"105.5,28.5,105.6,28.6"', "[]",
                            "[1,2,3]", "[true,28.5,105.6,28.6]", json.dumps([1.0] * 100_000), "[[1,2],[3,4]]",
                            "[1" + "0" * 400 + ",28.5,105.6,28.6]", "[-181,28.5,105.6,28.6]", "5"]),
    *({"datetime": v} for v in ["5", '["2024-01-01T00:00:00Z"]', '"0000-01-01T00:00:00Z"', '""',
                                '"9999-12-31T23:59:59-14:00"', '"' + "2" * 10_000 + '"']),
    *({key: v} for key in ("collections", "ids")
      for v in ['"sentinel-2-l2a"', "[1]", "[]", '[["x"]]', json.dumps(["x"] * (MAX_NAMES + 1)),
                json.dumps(["x" * 2000]), "{}"]),
    *({"intersects": v} for v in [
        '"POLYGON((106 29, 107 29, 107 30, 106 29))"', "[]", "5", '{"type": "Polygon"}',
        '{"type": "Polygon", "coordinates": "x"}', '{"type": "Polygon", "coordinates": [[[106, 29], [107, 30]]]}',
        '{"type": "Polygon", "coordinates": [[[106, 29], [107, 30], [107, 29], [106, 30], [106, 29]]]}',  # bow-tie
        '{"type": "Point", "coordinates": [NaN, 29]}', '{"type": "Point", "coordinates": [200, 29]}',
        '{"type": "Point", "coordinates": [1e400, 29]}', '{"type": "Point", "coordinates": ["106", "29"]}',
        '{"type": "Point", "coordinates": [106]}', '{"type": "GeometryCollection", "geometries": []}',
        '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [106, 29]}, "properties": {}}',
        '{"type": "Polygon", "coordinates": ' + "[" * 400 + "]" * 400 + "}",  # deep, yet within json's limits
        '{"type": "Polygon", "coordinates": ' + "[" * 100_000 + "]" * 100_000 + "}",  # deeper than json parses
        json.dumps(mapping(shapely.Point(106.3, 29.1).buffer(0.05, quad_segs=MAX_VERTICES // 4 + 1))),
    ]),
    {"bbox": "[106, 29, 107, 30]", "intersects": '{"type": "Point", "coordinates": [106.3, 29.1]}'},
    {"filter": '"1=1"'},
]


def _body(fields: dict[str, str]) -> str:
    """A body with values spelled as raw JSON text (so NaN, 1e400 and 100-digit integers reach the server as is)."""
    return "{" + ", ".join(f'"{key}": {value}' for key, value in fields.items()) + "}"


@pytest.mark.parametrize("fields", BODY_CASES, ids=[_body(c)[:60] for c in BODY_CASES])
def test_bad_post_search_bodies_are_400(api: ApiServer, fields: dict[str, str]) -> None:
    assert_refused(post_search(api, _body(fields)))


def test_malformed_and_huge_post_bodies_are_refused(api: ApiServer) -> None:
    for body in ("", "not json", "[]", "null", '{"limit": 5', "{" * 50_000):
        assert_refused(post_search(api, body))
    huge = json.dumps({"ids": ["x" * 1000] * 2000})  # 2 MB, beyond the 1 MiB body limit
    assert_refused(post_search(api, huge), status=413)


# --- intersects ---------------------------------------------------------------------------------------------

QUERY_GEOMETRIES = {
    "triangle": shapely.Polygon([(106.02, 29.02), (106.5, 29.05), (106.2, 29.3)]),
    "point": shapely.Point(106.33, 29.12),
    "line": shapely.LineString([(105.9, 29.2), (106.7, 29.21), (106.9, 28.8)]),
    "two squares": shapely.MultiPolygon([box(106.0, 29.0, 106.01, 29.01), box(106.8, 29.1, 106.85, 29.15)]),
    "ring with a hole": shapely.Polygon(box(105.9, 28.9, 107.2, 29.3).exterior.coords,
                                        [box(106.24, 28.95, 106.46, 29.25).exterior.coords]),
    "nowhere": box(100.0, 20.0, 100.1, 20.1),
}


@pytest.fixture(scope="module")
def item_shapes(api: ApiServer) -> dict[str, shapely.Geometry]:
    """Every STAC item's geometry, as served without any filter."""
    features = get(api, "/stac/search", limit="1000").json()["features"]
    assert len(features) == sum(STAC_COLLECTIONS.values())
    return {f["id"]: shape(f["geometry"]) for f in features}


def _all_ids_get(api: ApiServer, **params: str) -> list[str]:
    url, params_now, ids = f"{api.url}/stac/search", {**params, "limit": "5"}, []
    while url:
        body = httpx.get(url, params=params_now, headers=api.headers("housing"), timeout=TIMEOUT).json()
        ids += [f["id"] for f in body["features"]]
        url, params_now = next((link["href"] for link in body["links"] if link["rel"] == "next"), None), None
    return ids


def _all_ids_post(api: ApiServer, body: dict[str, Any]) -> list[str]:
    body, ids = {**body, "limit": 5}, []
    while body is not None:
        page = post_search(api, body).json()
        ids += [f["id"] for f in page["features"]]
        body = next((link["body"] for link in page["links"] if link["rel"] == "next"), None)
    return ids


@pytest.mark.parametrize("name", QUERY_GEOMETRIES)
def test_intersects_filters_as_shapely_does_on_get_and_post(api: ApiServer, item_shapes: dict[str, Any],
                                                           name: str) -> None:
    geometry = QUERY_GEOMETRIES[name]
    expected = sorted(item_id for item_id, item in item_shapes.items() if item.intersects(geometry))
    geojson = json.dumps(mapping(geometry))
    assert sorted(_all_ids_get(api, intersects=geojson)) == expected
    assert sorted(_all_ids_post(api, {"intersects": mapping(geometry)})) == expected
    in_one = sorted(i for i in expected if i.startswith("dem-srtm"))
    assert sorted(_all_ids_get(api, intersects=geojson, collections="dem-srtm")) == in_one
    assert sorted(_all_ids_post(api, {"intersects": mapping(geometry), "collections": ["dem-srtm"]})) == in_one
    if name == "ring with a hole":  # the items inside the hole are not matched: the exact test ran, not the bbox one
        assert any(item.within(box(106.24, 28.95, 106.46, 29.25)) for item in item_shapes.values())


def test_intersects_on_get_refuses_what_post_refuses(api: ApiServer) -> None:
    point = '{"type": "Point", "coordinates": [106.3, 29.1]}'
    assert_refused(get(api, "/stac/search", intersects=point, bbox="106,29,107,30"), mentions="not both")
    for bad in ("", "{", "[1]", '{"type": "Point", "coordinates": [NaN, 1]}',
                '{"type": "Polygon", "coordinates": [[[106, 29], [107, 30], [107, 29], [106, 30], [106, 29]]]}',
                '{"type": "Polygon", "coordinates": ' + "[" * 5000 + "]" * 5000 + "}"):
        assert_refused(get(api, "/stac/search", intersects=bad), mentions="intersects")


def test_pystac_client_searches_by_intersects(api: ApiServer, item_shapes: dict[str, Any]) -> None:
    from pystac_client import Client

    geometry = QUERY_GEOMETRIES["triangle"]
    expected = sorted(item_id for item_id, item in item_shapes.items() if item.intersects(geometry))
    client = Client.open(f"{api.url}/stac/", headers=api.headers("housing"))
    for method in ("GET", "POST"):
        found = client.search(intersects=mapping(geometry), limit=4, method=method).items()
        assert sorted(i.id for i in found) == expected, method


# --- Host, X-Forwarded-Host, Forwarded ---------------------------------------------------------------------

LINKED = ["/", "/collections", "/collections/parcels", "/collections/parcels/items?limit=2",
          "/collections/parcels/items/G00000041~2023", "/stac/", "/stac/collections", "/stac/collections/dem-srtm",
          "/stac/collections/dem-srtm/items?limit=2", "/stac/collections/dem-srtm/items/dem-srtm-001",
          "/stac/search?limit=2"]
PATHS = [*LINKED, "/conformance", "/stac", "/api", "/api.html", "/viewer/", "/nope", "/collections/nope/items"]
HOSTILE_HOSTS = [EVIL, f"{EVIL}:80", f"127.0.0.1:80@{EVIL}", f"127.0.0.1.{EVIL}", f"127.0.0.1:{EVIL}",
                 "127.0.0.1:99999", f"[::1]{EVIL}", EVIL.upper(), f"localhost\t{EVIL}", ""]
FORWARDING = {  # (X-Forwarded-Proto is uvicorn's to honour, from FORWARDED_ALLOW_IPS: http or https, never a host)
    "X-Forwarded-Host": EVIL, "Forwarded": f'host="{EVIL}";proto=https', "X-Forwarded-Server": EVIL, "X-Host": EVIL,
    "X-Original-Host": EVIL, "X-Forwarded-Prefix": f"//{EVIL}"}


def assert_no_evil(response: httpx.Response | http.client.HTTPResponse, body: bytes) -> None:
    headers = response.headers.items() if isinstance(response, httpx.Response) else response.getheaders()
    assert "evil" not in body.decode("utf-8", "replace").lower()
    assert not any("evil" in f"{k}: {v}".lower() for k, v in headers)


def raw_request(api: ApiServer, method: str, target: str, headers: list[tuple[str, str]],
                body: bytes = b"") -> tuple[http.client.HTTPResponse, bytes]:
    """Headers exactly as listed (repeated, odd or missing Host included), which httpx would not send."""
    parts = urlsplit(api.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for name, value in [*headers, ("Authorization", api.headers("housing")["Authorization"])]:
        conn.putheader(name, value)
    if body:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body or None)
    response = conn.getresponse()
    content = response.read()
    conn.close()
    return response, content


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_a_hostile_host_is_400_on_every_route_and_never_echoed(api: ApiServer, host: str) -> None:
    for path in PATHS:
        response, body = raw_request(api, "GET", path, [("Host", host), ("Accept", "text/html")])
        assert response.status == 400, (path, response.status)
        assert_no_evil(response, body)
        assert json.loads(body)["code"] == "InvalidParameterValue"
    for method, path, body in (("POST", "/stac/search", b'{"limit": 1}'), ("POST", "/sql", b'{"sql": "select 1"}')):
        response, content = raw_request(api, method, path, [("Host", host), ("Content-Type", "application/json")],
                                        body)
        assert response.status == 400 and b"Host" in content
        assert_no_evil(response, content)


def test_repeated_or_absent_host_headers(api: ApiServer) -> None:
    own = urlsplit(api.url).netloc
    for hosts in ([own, EVIL], [EVIL, own]):
        response, body = raw_request(api, "GET", "/collections", [("Host", h) for h in hosts])
        assert response.status == 400
        assert_no_evil(response, body)
    parts = urlsplit(api.url)  # HTTP/1.0 without Host: links name the socket's own address, which no client picks
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /collections HTTP/1.0\r\nAuthorization: " + api.headers("housing")["Authorization"].encode()
                     + b"\r\n\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 200") and f"http://{own}/collections".encode() in answer


def test_an_absolute_request_target_does_not_steer_links(api: ApiServer) -> None:
    own = urlsplit(api.url).netloc
    response, body = raw_request(api, "GET", f"http://{EVIL}/collections", [("Host", own)])
    assert_no_evil(response, body)
    if response.status == 200:
        assert f"http://{own}/collections".encode() in body


def _hrefs(document: Any) -> list[str]:
    """Every link href in a document, however deep (items' links and asset links included)."""
    if isinstance(document, dict):
        return [v for k, v in document.items() if k == "href" and isinstance(v, str)] + \
            [h for k, v in document.items() if k != "href" for h in _hrefs(v)]
    return [h for v in document for h in _hrefs(v)] if isinstance(document, list) else []


def test_forwarding_headers_are_not_trusted(api: ApiServer) -> None:
    for path in LINKED:
        response = get(api, path, headers=FORWARDING)
        assert response.status_code == 200, path
        assert_no_evil(response, response.content)
        own = [h for h in _hrefs(response.json()) if not h.startswith("https://example.invalid/")]
        assert own and all(h.startswith(f"{api.url}/") for h in own), (path, own)
    response = post_search(api, {"limit": 2}, headers=FORWARDING)
    assert response.status_code == 200
    assert_no_evil(response, response.content)


def test_refused_hosts_are_audited(api: ApiServer) -> None:
    from lake.access.audit import read_audit

    raw_request(api, "GET", "/collections/hygiene-audit-needle", [("Host", EVIL)])
    api.flush_audit()
    rows = [r for r in read_audit(limit=100_000).to_pylist() if "hygiene-audit-needle" in r["endpoint"]]
    assert [(r["status"], r["outcome"]) for r in rows] == [(400, "bad_request")]
    assert "Host" in rows[0]["message"]


@pytest.fixture
def public_url(api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The server's policy rebuilt from settings with ONEMAP_PUBLIC_URL set, as `onemap serve` would read it."""
    url = "https://onemap.example.gov/gis"
    monkeypatch.setenv("ONEMAP_PUBLIC_URL", url + "/")
    before = api.app.state.host_policy
    api.app.state.host_policy = HostPolicy.from_settings(current_settings())
    try:
        yield url
    finally:
        api.app.state.host_policy = before


def test_a_configured_public_url_is_what_links_carry(api: ApiServer, public_url: str) -> None:
    for path in LINKED:
        response = get(api, path, headers=FORWARDING)
        assert response.status_code == 200, path
        own = [h for h in _hrefs(response.json()) if not h.startswith("https://example.invalid/")]
        assert own and all(h.startswith(f"{public_url}/") for h in own), (path, own)
        assert api.url not in response.text
    page = get(api, "/collections/parcels/items", limit="2", offset="2").json()
    links = {link["rel"]: link["href"] for link in page["links"]}
    for rel, offset in (("next", "4"), ("prev", "0")):
        url, _, query = links[rel].partition("?")
        assert url == f"{public_url}/collections/parcels/items"
        assert parse_qs(query) == {"limit": ["2"], "offset": [offset]}
    post = post_search(api, {"limit": 2}).json()
    assert {link["href"] for link in post["links"]} == {f"{public_url}/stac/", f"{public_url}/stac/search"}
    response, _ = raw_request(api, "GET", "/conformance", [("Host", "onemap.example.gov")])
    assert response.status == 200  # the public URL's host is answered (a proxy passing Host through)
    response, body = raw_request(api, "GET", "/conformance", [("Host", EVIL)])
    assert response.status == 400  # others still are not
    assert_no_evil(response, body)


def test_public_url_and_allowed_hosts_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEMAP_ALLOWED_HOSTS", "Twin.Example.Gov, ::1 ,10.0.0.5")
    monkeypatch.delenv("ONEMAP_PUBLIC_URL", raising=False)
    policy = HostPolicy.from_settings(current_settings())
    assert policy == HostPolicy(None, frozenset({"twin.example.gov", "[::1]", "10.0.0.5"}))
    for bad in ("ftp://x.example", "https://", "https://u:p@x.example", "https://x.example/?a=1", "x.example"):
        monkeypatch.setenv("ONEMAP_PUBLIC_URL", bad)
        with pytest.raises(OnemapError, match="ONEMAP_PUBLIC_URL"):
            HostPolicy.from_settings(current_settings())
    monkeypatch.delenv("ONEMAP_ALLOWED_HOSTS")
    monkeypatch.delenv("ONEMAP_PUBLIC_URL")
    assert HostPolicy.from_settings(current_settings()).allowed == {"127.0.0.1", "localhost", "[::1]"}


def test_serve_host_joins_the_allow_list_but_a_wildcard_does_not(api: ApiServer) -> None:
    before = api.app.state.host_policy
    try:
        for wildcard in ("0.0.0.0", "::", "[::]"):
            allow_host(api.app, wildcard)
        assert api.app.state.host_policy == before
        assert raw_request(api, "GET", "/conformance", [("Host", "onemap.lan:8080")])[0].status == 400
        allow_host(api.app, "onemap.lan")
        allow_host(api.app, "fe80::1")
        assert api.app.state.host_policy.allowed == before.allowed | {"onemap.lan", "[fe80::1]"}
        assert raw_request(api, "GET", "/conformance", [("Host", "onemap.lan:8080")])[0].status == 200
    finally:
        api.app.state.host_policy = before


# --- OpenAPI ------------------------------------------------------------------------------------------------

def _objects(document: Any) -> Iterator[dict[str, Any]]:
    if isinstance(document, dict):
        yield document
        document = list(document.values())
    if isinstance(document, list):
        for value in document:
            yield from _objects(value)


def test_the_openapi_pages_hold_no_lake_data(api: ApiServer) -> None:
    """/api and /api.html are public (no token), so they must describe routes only: no collection, district,
    department, item or token value, no examples, and no enum but the SQL output formats."""
    spec = httpx.get(f"{api.url}/api", timeout=TIMEOUT)
    page = httpx.get(f"{api.url}/api.html", timeout=TIMEOUT)
    assert spec.status_code == page.status_code == 200
    lake_values = [*STAC_COLLECTIONS, *DISTRICTS, "housing", "agriculture", "transport", "G000", "dem-srtm-0",
                   "example.invalid", "omt_", *api.tokens.values()]
    for text in (spec.text, page.text):
        assert [value for value in lake_values if value in text] == []
    objects = list(_objects(spec.json()))
    assert not any({"example", "examples"} & set(o) for o in objects) and "servers" not in spec.json()
    assert [o["enum"] for o in objects if "enum" in o] == [["json", "csv", "geojson", "parquet"]]
