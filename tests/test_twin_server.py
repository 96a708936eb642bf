"""The twin viewer's server without a browser: tile paths confined to their folders, media types and caching, the
JSON endpoints against the lake they read, browsers sent to /viewer/, and what the audit trail records.

Requests are signed in as the governance center (every table the twin shows, whole) through the real sign-in
route; what other departments see (and that nothing answers without credentials) is tests/test_twin_signin.py."""

from __future__ import annotations

import gzip
import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
import shapely

from lake import delta_io
from lake.access import sessions
from lake.access.audit import read_audit
from lake.domain import REGION_CODE
from lake.publish import read_published
from lake.registry import BUILDINGS, DISTRICTS, GOLD_CONFLICTS, GOLD_DISTRICT_INDICATORS, GOLD_ONE_MAP_PARCELS
from twin_viewer.server.app import ApiConfig, create_app
from twin_viewer.server.run import serve_in_thread
from twin_viewer.server.twin_grants import governance_center_token
from twin_viewer.server.viewer import CESIUM_DIR

SECRET = "twin-server-test: this file lies outside every served folder"


@pytest.fixture(scope="module")
def server(twin_demo: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    mp = pytest.MonkeyPatch()
    mp.setenv("ONEMAP_HOME", str(twin_demo["home"]))
    mp.setenv("ONEMAP_LAKE", str(twin_demo["lake"]))
    outside = tmp_path_factory.mktemp("outside") / "secret.json"
    outside.write_text(f'{{"secret": "{SECRET}"}}')
    app = create_app(ApiConfig(audit_interval_s=60))
    try:
        with serve_in_thread(app) as url:
            for warm_up in [t for t in threading.enumerate() if t.name.endswith("warm-up")]:
                warm_up.join(timeout=300)  # its renders would race the tests' own cache checks and outlive the env
            yield {"url": url, "app": app, "twin": twin_demo["home"] / "twin", "outside": outside,
                   "auth": sign_in(url, governance_center_token()), **twin_demo}
    finally:
        mp.undo()


def sign_in(url: str, token: str) -> dict[str, str]:
    """The Cookie header of a session opened with `token` on the sign-in route."""
    response = httpx.post(f"{url}/viewer/signin", json={"token": token}, timeout=30)
    assert response.status_code == 200, response.text
    return {"Cookie": f"{sessions.COOKIE_NAME}={response.cookies[sessions.COOKIE_NAME]}"}


def raw_get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET a path exactly as written (httpx and browsers would normalise '..' away before sending)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get(server: dict, path: str, signed_in: bool = True, **kwargs) -> httpx.Response:
    headers = {**(server["auth"] if signed_in else {}), **kwargs.pop("headers", {})}
    return httpx.get(server["url"] + path, timeout=60, headers=headers, **kwargs)


# --- tile paths ----------------------------------------------------------------------------------------------
def test_traversal_and_absolute_tile_paths_are_404_and_serve_nothing_outside(server: dict) -> None:
    outside = server["outside"]
    relative_out = "../../../.." + str(outside)
    attempts = [
        "/twin/buildings/../manifest.json", "/twin/buildings/../../twin/manifest.json",
        f"/twin/terrain/{relative_out}", "/twin/terrain/%2e%2e/%2e%2e/manifest.json",
        "/twin/buildings/..%2f..%2fmanifest.json", "/twin/buildings/%2e%2e%2fmanifest.json",
        f"/twin/buildings/{outside}", f"/twin/buildings//{outside}", f"/twin/buildings/%2F{str(outside)[1:]}",
        "/twin/buildings/C:/Windows/win.ini", "/twin/buildings/..\\manifest.json", "/twin/buildings/.",
        "/viewer/cesium/../../../package.json", "/viewer/../pyproject.toml", "/viewer/%2e%2e/app.py",
        f"/viewer/{outside}",
    ]
    for path in attempts:
        status, body = raw_get(server["url"], path, server["auth"])
        assert status == 404, (path, status, body[:200])
        assert SECRET.encode() not in body and b'"build_id"' not in body, path


def test_a_symlink_leading_out_of_the_tile_folder_is_404(server: dict) -> None:
    link = server["twin"] / "buildings" / "escape.json"
    link.symlink_to(server["outside"])
    try:
        response = get(server, "/twin/buildings/escape.json")
        assert response.status_code == 404
        assert SECRET not in response.text
    finally:
        link.unlink()


def test_tiles_have_their_media_types_cache_headers_and_gzip(server: dict) -> None:
    twin: Path = server["twin"]
    glb = next((twin / "buildings").rglob("*.glb")).relative_to(twin / "buildings").as_posix()
    terrain = next((twin / "terrain").rglob("*.terrain")).relative_to(twin / "terrain").as_posix()
    expected = {"/twin/buildings/tileset.json": "application/json", f"/twin/buildings/{glb}": "model/gltf-binary",
                "/twin/terrain/layer.json": "application/json",
                f"/twin/terrain/{terrain}": "application/vnd.quantized-mesh",
                "/viewer/cesium/Cesium.js": "text/javascript", "/viewer/": "text/html"}
    for path, media in expected.items():
        response = get(server, path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media), (path, response.headers["content-type"])
        assert "cache-control" in response.headers and response.headers.get("etag"), path
        if path.startswith("/twin/"):  # what a department sees: never in a shared cache, kept per cookie
            assert response.headers["cache-control"].startswith("private") and "Cookie" in response.headers["vary"]
    plain = get(server, "/twin/buildings/tileset.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == (twin / "buildings" / "tileset.json").read_bytes()
    status, body = raw_get(server["url"], "/viewer/cesium/Cesium.js", {"Accept-Encoding": "gzip"})
    assert status == 200 and gzip.decompress(body) == (CESIUM_DIR / "Cesium.js").read_bytes()
    again = get(server, "/twin/buildings/tileset.json", headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304 and not again.content


def test_terrain_below_the_built_levels_is_cut_on_request_and_only_where_layer_json_declares_it(server: dict) -> None:
    terrain = server["twin"] / "terrain"
    layer = get(server, "/twin/terrain/layer.json").json()
    deepest = layer["available"][-1][0]
    path = f"/twin/terrain/{layer['maxzoom']}/{deepest['startX']}/{deepest['startY']}.terrain"
    assert not (terrain / path.removeprefix("/twin/terrain/")).exists()
    status, body = raw_get(server["url"], path, {"Accept-Encoding": "gzip", **server["auth"]})
    assert status == 200 and len(gzip.decompress(body)) > 88  # header (88 bytes) and the mesh after it
    response = get(server, path)
    assert response.headers["content-type"] == "application/vnd.quantized-mesh" and response.headers["etag"]
    assert get(server, path, headers={"If-None-Match": response.headers["etag"]}).status_code == 304
    for outside in (f"{layer['maxzoom']}/{deepest['endX'] + 1}/{deepest['startY']}.terrain",
                    f"{layer['maxzoom'] + 1}/0/0.terrain", f"{layer['maxzoom']}/x/0.terrain"):
        response = get(server, f"/twin/terrain/{outside}")
        assert response.status_code == 404 and outside in response.json()["description"], outside
    kept = terrain / "dem.npz"
    original = kept.read_bytes()
    try:
        kept.write_bytes(b"not a zip")  # a damaged kept DEM: deep tiles say which file and what to do
        response = get(server, path)
        assert response.status_code == 500
        assert "dem.npz" in response.json()["description"] and "rebuild" in response.json()["description"]
        assert get(server, "/twin/terrain/0/0/0.terrain").status_code == 200  # the built levels still serve
    finally:
        kept.write_bytes(original)
    assert get(server, path).status_code == 200


def test_map_tiles_are_png_and_an_unknown_overlay_is_404(server: dict) -> None:
    for path in ("/twin/overlay/parcels/8/203/105.png", "/twin/overlay/control_lines/8/203/105.png",
                 "/twin/overlay/conflicts/8/203/105.png", "/twin/imagery/8/203/105.png", "/twin/imagery/3/0/0.png",
                 "/twin/overlay/imagery,parcels,control_lines,conflicts/8/203/105.png"):
        response = get(server, path)
        assert response.status_code == 200, (path, response.text[:200])
        assert response.headers["content-type"] in ("image/png", "image/jpeg")
        assert response.headers["cache-control"].startswith("private") and "Cookie" in response.headers["vary"]
        assert response.content[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb")
    for path in ("/twin/overlay/roads/8/203/105.png", "/twin/overlay/parcels,roads/8/203/105.png",
                 "/twin/overlay/parcels/3/9/0.png",
                 "/twin/overlay/parcels/8/203/105.png?year=1900"):
        response = get(server, path)
        assert response.status_code == 404, path
        assert response.json()["description"]


# --- JSON endpoints ------------------------------------------------------------------------------------------
def test_building_attributes_come_from_silver_and_an_unknown_id_is_404_naming_it(server: dict) -> None:
    buildings = delta_io.read_table(BUILDINGS).drop_columns(["geometry"]).to_pylist()
    for expected in (buildings[0], next(b for b in buildings if "$" in b["building_id"] or b["lod"] == "BIM")):
        response = get(server, f"/twin/api/buildings/{quote(expected['building_id'], safe='')}")
        assert response.status_code == 200, expected["building_id"]
        body = response.json()
        for key in ("building_id", "name", "function", "storeys", "height_m", "district_code", "source_format"):
            assert body[key] == expected[key], key
        lon, lat = body["centre"]
        assert expected["bbox_xmin"] <= lon <= expected["bbox_xmax"]
    response = get(server, "/twin/api/buildings/NO-SUCH-BUILDING-42")
    assert response.status_code == 404
    assert "NO-SUCH-BUILDING-42" in response.json()["description"]


def test_districts_indicators_and_conflicts_match_the_lake(server: dict) -> None:
    districts = get(server, "/twin/api/districts").json()
    lake_districts = delta_io.read_table(DISTRICTS, columns=["district_code", "name", "geometry"]).to_pylist()
    assert sorted(d["code"] for d in districts) == sorted(r["district_code"] for r in lake_districts)
    assert len(districts) == 38
    outlines = {r["district_code"]: shapely.from_wkb(r["geometry"]) for r in lake_districts}
    for d in districts:
        assert outlines[d["code"]].covers(shapely.Point(d["centre"])), d["code"]

    body = get(server, "/twin/api/indicators").json()
    gold = {r["district_code"]: r for r in read_published(GOLD_DISTRICT_INDICATORS).to_pylist()}
    assert len(body["rows"]) == len(gold) == 39 and body["rows"][0]["code"] == REGION_CODE
    assert {i["id"] for i in body["indicators"]} >= {"development_intensity", "forest_cover", "cultivated_land_area"}
    assert all(i["unit"] and i["target_2025"] > 0 for i in body["indicators"])
    for row in body["rows"]:
        for indicator, v in row["values"].items():
            assert v["value"] == pytest.approx(gold[row["code"]][indicator])
            assert v["target"] == pytest.approx(gold[row["code"]][f"{indicator}_target"])
            assert v["status"] == gold[row["code"]][f"{indicator}_status"] in ("met", "at risk", "breached")

    conflicts = read_published(GOLD_CONFLICTS, columns=["conflict_id", "severity", "area_m2"])
    page = get(server, "/twin/api/conflicts", params={"limit": 5}).json()
    assert page["total"] == conflicts.num_rows and len(page["conflicts"]) == min(5, conflicts.num_rows)
    everything = get(server, "/twin/api/conflicts", params={"limit": 10_000}).json()["conflicts"]
    assert {c["conflict_id"] for c in everything} == set(conflicts.column("conflict_id").to_pylist())
    errors_first = [c["severity"] != "error" for c in everything]
    assert errors_first == sorted(errors_first)
    for c in everything[:20]:
        west, south, east, north = c["bbox"]
        assert west <= c["centre"][0] <= east and south <= c["centre"][1] <= north


def test_parcels_by_id_and_by_point(server: dict) -> None:
    gold = read_published(GOLD_ONE_MAP_PARCELS, columns=["parcel_id", "land_class_code", "geometry"])
    row = gold.slice(gold.num_rows // 2, 1).to_pylist()[0]
    body = get(server, f"/twin/api/parcels/{row['parcel_id']}").json()
    assert body["one_map"]["land_class_code"] == row["land_class_code"]
    assert {s["survey_year"] for s in body["survey"]} and all(s["parcel_id"] == row["parcel_id"]
                                                              for s in body["survey"])
    inside = shapely.point_on_surface(shapely.from_wkb(row["geometry"]))
    hit = get(server, "/twin/api/parcel_at", params={"lon": inside.x, "lat": inside.y})
    assert hit.status_code == 200 and hit.json()["parcel_id"] == row["parcel_id"]
    assert get(server, "/twin/api/parcels/99999999999999").status_code == 404
    assert get(server, "/twin/api/parcel_at", params={"lon": 0.0, "lat": 0.0}).status_code == 404
    assert get(server, "/twin/api/parcel_at", params={"lon": 500, "lat": 0}).status_code == 400


def test_search_finds_districts_buildings_and_parcels_with_places_to_fly_to(server: dict) -> None:
    by_name = get(server, "/twin/api/search", params={"q": "渝中"}).json()["results"]
    assert by_name[0] == {**by_name[0], "kind": "district", "id": "500103"}
    assert get(server, "/twin/api/search", params={"q": "500103"}).json()["results"][0]["label"] == "渝中区"
    building = delta_io.read_table(BUILDINGS, columns=["building_id"]).column(0)[0].as_py()
    hits = get(server, "/twin/api/search", params={"q": building}).json()["results"]
    assert hits[0]["kind"] == "building" and hits[0]["id"] == building and len(hits[0]["centre"]) == 2
    parcel = read_published(GOLD_ONE_MAP_PARCELS, columns=["parcel_id"]).column(0)[0].as_py()
    hits = get(server, "/twin/api/search", params={"q": parcel}).json()["results"]
    assert any(h["kind"] == "parcel" and h["id"] == parcel for h in hits)
    assert get(server, "/twin/api/search", params={"q": "nothing-like-this"}).json()["results"] == []


def test_manifest_layers_and_legend(server: dict) -> None:
    manifest = get(server, "/twin/api/manifest").json()
    assert manifest["department"] == "governance-center" and all(manifest["layers"].values())
    assert manifest["build_id"] == server["build_id"] and manifest["tiles_current"] is True
    assert manifest["buildings"]["count"] == server["twin_manifest"]["buildings"]["count"] > 0
    assert manifest["maptiles"] is True and manifest["survey_years"]
    hazards = get(server, "/twin/api/layers/hazard_points.geojson")
    assert hazards.headers["content-type"] == "application/geo+json"
    assert hazards.json()["type"] == "FeatureCollection" and hazards.json()["features"]
    assert get(server, "/twin/api/layers/nope.geojson").status_code == 404
    legend = get(server, "/twin/api/legend").json()
    assert all({"code", "name", "color"} <= set(e) for e in legend)


def test_warm_up_renders_the_default_view_and_its_tile_requests_are_cache_hits(server: dict) -> None:
    import twin_viewer.maptiles as maptiles
    from twin_viewer.maptiles.composite import cache_folder
    from twin_viewer.maptiles.lakestate import current_state

    defaults = get(server, "/viewer/defaults.json").json()
    assert defaults == {"target": maptiles.DEFAULT_TARGET, "map_layers": list(maptiles.MAP_LAYERS)}
    assert maptiles.warm()["tiles"] > 0
    year = get(server, "/twin/api/manifest").json()["survey_years"][-1]  # what the page opens on
    layers = ",".join(defaults["map_layers"])
    # this year's folder: the browser tests leave other years' tiles in folders beside it
    cached = sorted(cache_folder(defaults["map_layers"], year, current_state()).glob("17/*/*.png"))
    assert cached  # the target's block at the finest view zoom has tiles with several layers drawn
    x, y = cached[0].parent.name, cached[0].stem
    rendered = cached[0].read_bytes()
    marker = rendered + b"cached"  # a request can only answer this from the cache file
    cached[0].write_bytes(marker)
    try:
        tile = get(server, f"/twin/overlay/{layers}/17/{x}/{y}.png?year={year}")
    finally:
        cached[0].write_bytes(rendered)
    assert tile.status_code == 200 and tile.content == marker


# --- the rest of the app -------------------------------------------------------------------------------------
def test_browsers_go_to_the_viewer_and_json_clients_keep_the_landing_page(server: dict) -> None:
    browser = get(server, "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.status_code == 303 and browser.headers["location"] == "/viewer/"
    landing = get(server, "/", signed_in=False, headers={"Accept": "application/json"})
    assert landing.status_code == 401  # the OGC landing needs a token (or a viewer session)
    page = get(server, "/viewer/")
    assert "/viewer/cesium/Cesium.js" in page.text and "://" not in page.text  # nothing from another host


def test_tiles_are_not_audited_but_api_calls_and_refusals_are(server: dict) -> None:
    marker = "audit-marker-7d1"
    get(server, f"/twin/buildings/tileset.json?{marker}")
    get(server, f"/twin/api/search?q={marker}")
    raw_get(server["url"], f"/twin/buildings/../manifest.json?{marker}", server["auth"])
    server["app"].state.audit.flush()
    rows = [r for r in read_audit(limit=100_000).to_pylist() if marker in (r["parameters"] or "")]
    endpoints = {r["endpoint"].split("?")[0]: r["status"] for r in rows}
    assert endpoints == {"/twin/api/search": 200, "/twin/buildings/../manifest.json": 404}
