"""The signed-in twin against a real server over the published demo with its twin tiles built.

Every twin route refuses a request without credentials (the routes are enumerated from the app, so a new one cannot
be forgotten); each department sees only its grants — none, all but the parcels, or one district with some columns —
down to the tiles' pixels; the session cookie's flags are those of the real Set-Cookie header; and a session or
token dies with its token (tampered, expired, revoked, department deleted or re-created). In Chromium, a district
office's page shows its grants and asks for nothing else.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import shapely
from PIL import Image

from lake import delta_io
from lake.access import grants, sessions
from lake.access.audit import read_audit
from lake.publish import read_published
from lake.registry import (BUILDINGS, CONTROL_LINES, DISTRICTS, GOLD_CONFLICTS, GOLD_ONE_MAP_PARCELS, HAZARD_POINTS,
                           PARCELS)
from tests.test_twin_maptiles import inner_point, pixel_of
from twin_viewer.screenshot import CHROMIUM, browser_session
from twin_viewer.server.app import ApiConfig, create_app
from twin_viewer.server.run import serve_in_thread
from twin_viewer.server.twin_grants import TWIN_TABLES, governance_center_token

PUBLIC = {("GET", "/viewer"), ("GET", "/viewer/"), ("GET", "/viewer/signin"), ("POST", "/viewer/signin"),
          ("POST", "/viewer/signout"), ("GET", "/viewer/cesium/{path:path}"), ("GET", "/viewer/{path:path}")}
DISTRICT = "500103"  # 渝中: parcels, conflicts, control lines, hazards and buildings in the demo
PARCEL_COLUMNS = ["parcel_id", "survey_year", "district_code", "land_class_code", "geometry"]
GRANTED = {  # the district office's grants: table → columns (None: all), every one limited to DISTRICT
    "gold/one_map_parcels": PARCEL_COLUMNS, "silver/parcels": PARCEL_COLUMNS,
    "gold/control_line_conflicts": ["conflict_id", "severity", "district_code", "geometry"],
    "silver/control_lines": None, "silver/hazard_points": ["hazard_id", "district_code", "geometry"],
    "silver/buildings": ["building_id", "district_code", "height_m", "geometry"], "silver/districts": None,
    "gold/district_indicators": ["district_code", "district_name", "survey_year", "forest_cover",
                                 "forest_cover_target", "forest_cover_status"]}
PLACE = {"bbox", "centre"}  # derived from the geometry


def walk(routes: list, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route of the app, through included routers."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
        elif hasattr(route, "methods"):
            for method in sorted(route.methods - {"HEAD"}):
                yield method, prefix + route.path


def tile_box(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """West, south, east, north (degrees) of an XYZ tile."""
    n = 2 ** z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def rgba(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


@pytest.fixture(scope="module")
def twin(twin_demo: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A server over a copy of the twin demo's home (grants of its own) and the demo's lake, with departments:
    the governance center (everything), `nothing` (no grants), `no-parcels` (everything but the parcel tables),
    `survey-only` (silver parcels) and `district-office` (GRANTED, one district)."""
    home = tmp_path_factory.mktemp("signin") / "home"
    shutil.copytree(twin_demo["home"], home, ignore=shutil.ignore_patterns("access"))
    mp = pytest.MonkeyPatch()
    mp.setenv("ONEMAP_HOME", str(home))
    mp.setenv("ONEMAP_LAKE", str(twin_demo["lake"]))
    try:
        tokens = {"governance-center": governance_center_token()}
        for name, tables in (("nothing", {}), ("no-parcels", {t: None for t in TWIN_TABLES if "parcels" not in t}),
                             ("survey-only", {PARCELS.key: None}), ("district-office", GRANTED)):
            grants.create_department(name)
            for table, columns in tables.items():
                grants.grant(name, table, columns, [DISTRICT] if name == "district-office" else None)
            tokens[name] = grants.issue_token(name)[1]
        grants.grant("district-office", "silver/stac_items")  # the catalog has no districts: whole
        app = create_app(ApiConfig(audit_interval_s=60))
        with serve_in_thread(app) as url:
            for warm_up in [t for t in threading.enumerate() if t.name.endswith("warm-up")]:
                warm_up.join(timeout=300)  # it renders into this home: let it finish before the env is undone
            cookies = {name: sign_in(url, token) for name, token in tokens.items()}
            yield {"url": url, "app": app, "home": home, "tokens": tokens, "cookies": cookies, "lake": lake_facts()}
    finally:
        mp.undo()


def sign_in(url: str, token: str) -> str:
    response = httpx.post(f"{url}/viewer/signin", json={"token": token}, timeout=30)
    assert response.status_code == 200, response.text
    return response.cookies[sessions.COOKIE_NAME]


def lake_facts() -> dict:
    """Ids and names inside and outside DISTRICT, read straight from the lake (not through the server)."""
    tables = {"gold": read_published(GOLD_ONE_MAP_PARCELS, ["parcel_id", "district_code", "land_class_code",
                                                            "geometry"]),
              "silver": delta_io.read_table(PARCELS, ["parcel_id", "survey_year", "district_code", "geometry"]),
              "conflicts": read_published(GOLD_CONFLICTS, ["conflict_id", "district_code", "geometry"]),
              "lines": delta_io.read_table(CONTROL_LINES, ["line_id", "district_code", "geometry"]),
              "hazards": delta_io.read_table(HAZARD_POINTS, ["hazard_id", "district_code", "geometry"]),
              "buildings": delta_io.read_table(BUILDINGS, ["building_id", "district_code", "name", "bbox_xmin",
                                                           "bbox_ymin", "bbox_xmax", "bbox_ymax"]),
              "districts": delta_io.read_table(DISTRICTS, ["district_code", "name", "bbox_xmin", "bbox_ymin",
                                                           "bbox_xmax", "bbox_ymax"])}

    def split(table: pa.Table) -> tuple[pa.Table, pa.Table]:
        inside = pc.equal(table.column("district_code").cast(pa.string()), DISTRICT)
        return table.filter(inside), table.filter(pc.invert(inside))

    parts = {name: split(table) for name, table in tables.items()}
    ids = {"gold": "parcel_id", "silver": "parcel_id", "conflicts": "conflict_id", "lines": "line_id",
           "hazards": "hazard_id", "buildings": "building_id", "districts": "name"}
    foreign = {v for name, column in ids.items() for v in parts[name][1].column(column).to_pylist() if v}
    foreign |= {v for v in parts["buildings"][1].column("name").to_pylist() if v and len(v) > 3}
    drawn = [shapely.from_wkb(g) for name in ("gold", "silver", "conflicts", "lines")
             for g in parts[name][0].column("geometry").to_pylist()]
    return {"inside": {name: p[0] for name, p in parts.items()}, "outside": {name: p[1] for name, p in parts.items()},
            "foreign": foreign, "district_box": shapely.union_all(drawn).bounds}


def get(twin: dict, path: str, department: str | None = None, **kwargs) -> httpx.Response:
    """GET as a department's signed-in browser (its session cookie), or without credentials."""
    headers = {"Cookie": f"{sessions.COOKIE_NAME}={twin['cookies'][department]}"} if department else {}
    return httpx.get(twin["url"] + path, headers={**headers, **kwargs.pop("headers", {})}, timeout=60, **kwargs)


def samples(twin: dict) -> dict[str, str]:
    """A URL per twin route that answers 200 to the governance center."""
    gold = twin["lake"]["inside"]["gold"].to_pylist()[0]
    point, _ = inner_point(gold["geometry"])
    building = twin["lake"]["inside"]["buildings"].column("building_id")[0].as_py()
    tx, ty, _, _ = pixel_of(point.x, point.y, 12)
    return {
        "/viewer/session": "/viewer/session", "/viewer/defaults.json": "/viewer/defaults.json",
        "/twin/buildings/{path:path}": "/twin/buildings/tileset.json",
        "/twin/terrain/{path:path}": "/twin/terrain/layer.json",
        "/twin/imagery/{z}/{x}/{y}.png": f"/twin/imagery/12/{tx}/{ty}.png",
        "/twin/overlay/{layers}/{z}/{x}/{y}.png": f"/twin/overlay/imagery,parcels,control_lines,conflicts/12/{tx}/{ty}"
                                                  ".png",
        "/twin/api/manifest": "/twin/api/manifest",
        "/twin/api/buildings/{building_id}": f"/twin/api/buildings/{quote(building, safe='')}",
        "/twin/api/parcels/{parcel_id}": f"/twin/api/parcels/{gold['parcel_id']}",
        "/twin/api/parcel_at": f"/twin/api/parcel_at?lon={point.x}&lat={point.y}",
        "/twin/api/districts": "/twin/api/districts", "/twin/api/indicators": "/twin/api/indicators",
        "/twin/api/conflicts": "/twin/api/conflicts", "/twin/api/search": "/twin/api/search?q=500103",
        "/twin/api/layers/{name}.geojson": "/twin/api/layers/hazard_points.geojson",
        "/twin/api/legend": "/twin/api/legend"}


def twin_routes(twin: dict) -> list[tuple[str, str]]:
    return [(m, p) for m, p in walk(twin["app"].routes) if p.startswith(("/twin", "/viewer")) and (m, p) not in PUBLIC]


def assert_error_document(response: httpx.Response) -> None:
    """A refusal carries nothing but the error document."""
    assert set(response.json()) == {"code", "description"}, response.text[:300]


# --- without credentials -------------------------------------------------------------------------------------
def test_every_twin_route_refuses_a_request_without_credentials(twin: dict) -> None:
    routes = twin_routes(twin)
    urls = samples(twin)
    assert len(routes) >= len(urls)  # the enumeration sees every route the samples know
    for method, path in routes:
        url = urls.get(path) or path.replace("{path:path}", "x").replace("{", "").replace("}", "")
        response = httpx.request(method, twin["url"] + url, timeout=60)
        assert response.status_code == 401, (method, path, response.status_code, response.text[:200])
        assert_error_document(response)
        assert response.headers["www-authenticate"].startswith("Bearer")
        if path in urls:  # the same URL signed in answers: the 401 above was the credential, not the URL
            assert get(twin, url, "governance-center").status_code == 200, url
    for method, path in PUBLIC & {("GET", "/viewer/"), ("GET", "/viewer/signin")}:
        page = httpx.request(method, twin["url"] + path, timeout=60)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_a_bad_bearer_token_is_not_rescued_by_a_good_cookie(twin: dict) -> None:
    response = get(twin, "/twin/api/manifest", "governance-center", headers={"Authorization": "Bearer omt_nope"})
    assert response.status_code == 401
    bearer = httpx.get(twin["url"] + "/twin/api/manifest", timeout=30,
                       headers={"Authorization": f"Bearer {twin['tokens']['governance-center']}"})
    assert bearer.status_code == 200 and bearer.json()["department"] == "governance-center"


# --- what each department sees ------------------------------------------------------------------------------
def test_a_department_without_grants_gets_no_data_on_any_twin_route(twin: dict) -> None:
    urls = samples(twin)
    for _, path in twin_routes(twin):
        response = get(twin, urls[path], "nothing")
        if path == "/viewer/session":
            assert response.status_code == 200 and response.json()["department"] == "nothing"
            assert set(response.json()) == {"department", "token_id", "via", "expires_at"}
        elif path == "/viewer/defaults.json":
            assert response.status_code == 200 and response.json()["map_layers"] == []
        else:
            assert response.status_code == 403, (path, response.status_code, response.text[:200])
            assert_error_document(response)
            assert "not have" in response.json()["description"] or "no grant" in response.json()["description"]


def test_without_the_parcel_tables_no_parcel_pixel_or_attribute_comes_back(twin: dict) -> None:
    gold = twin["lake"]["inside"]["gold"].to_pylist()[0]
    point, _ = inner_point(gold["geometry"])
    tx, ty, _, _ = pixel_of(point.x, point.y, 12)
    for path in (f"/twin/overlay/parcels/12/{tx}/{ty}.png", f"/twin/overlay/imagery,parcels/12/{tx}/{ty}.png",
                 f"/twin/overlay/parcels/12/{tx}/{ty}.png?year=2019", f"/twin/api/parcels/{gold['parcel_id']}",
                 f"/twin/api/parcel_at?lon={point.x}&lat={point.y}", "/twin/api/legend"):
        response = get(twin, path, "no-parcels")
        assert response.status_code == 403, path
        assert_error_document(response)
    others = get(twin, f"/twin/overlay/imagery,control_lines,conflicts/12/{tx}/{ty}.png", "no-parcels")
    assert others.status_code == 200 and others.headers["content-type"] == "image/png"
    manifest = get(twin, "/twin/api/manifest", "no-parcels").json()
    assert manifest["survey_years"] == [] and manifest["layers"]["parcels"] is False
    assert manifest["layers"]["conflicts"] and manifest["layers"]["buildings"]
    assert "parcels" not in get(twin, "/viewer/defaults.json", "no-parcels").json()["map_layers"]
    found = get(twin, "/twin/api/search", "no-parcels", params={"q": gold["parcel_id"]}).json()["results"]
    assert [h for h in found if h["kind"] == "parcel"] == []


def test_silver_parcels_alone_show_the_older_survey_years_only(twin: dict) -> None:
    manifest = get(twin, "/twin/api/manifest", "survey-only").json()
    assert manifest["survey_years"] == [2019] and manifest["build_id"] is None and not manifest["layers"]["buildings"]
    old = twin["lake"]["inside"]["silver"].filter(pc.equal(twin["lake"]["inside"]["silver"].column("survey_year"),
                                                           2019)).to_pylist()[0]
    point, _ = inner_point(old["geometry"])
    tx, ty, _, _ = pixel_of(point.x, point.y, 12)
    assert get(twin, f"/twin/overlay/parcels/12/{tx}/{ty}.png", "survey-only").status_code == 403  # gold's year
    assert get(twin, f"/twin/overlay/parcels/12/{tx}/{ty}.png?year=2019", "survey-only").status_code == 200
    assert get(twin, f"/twin/api/parcel_at?lon={point.x}&lat={point.y}", "survey-only").status_code == 403
    hit = get(twin, f"/twin/api/parcel_at?lon={point.x}&lat={point.y}&year=2019", "survey-only").json()
    assert hit["parcel_id"] == old["parcel_id"] and hit["survey_year"] == 2019
    body = get(twin, f"/twin/api/parcels/{old['parcel_id']}", "survey-only").json()
    assert body["one_map"] is None and body["survey"]


def test_a_district_office_sees_its_district_and_granted_columns_only(twin: dict) -> None:
    inside = twin["lake"]["inside"]
    own = inside["gold"].to_pylist()[0]
    body = get(twin, f"/twin/api/parcels/{own['parcel_id']}", "district-office").json()
    assert set(body["one_map"]) <= set(PARCEL_COLUMNS) | PLACE and body["one_map"]["land_class_code"]
    assert all(set(s) <= set(PARCEL_COLUMNS) | PLACE for s in body["survey"]) and len(body["survey"]) == 2
    point, _ = inner_point(own["geometry"])
    hit = get(twin, f"/twin/api/parcel_at?lon={point.x}&lat={point.y}", "district-office").json()
    assert hit["parcel_id"] == own["parcel_id"] and set(hit) <= set(PARCEL_COLUMNS)

    conflicts = get(twin, "/twin/api/conflicts", "district-office", params={"limit": 10_000}).json()
    assert conflicts["total"] == inside["conflicts"].num_rows > 0
    assert all(c["district_code"] == DISTRICT and set(c) <= set(GRANTED["gold/control_line_conflicts"]) | PLACE
               for c in conflicts["conflicts"])
    assert get(twin, "/twin/api/conflicts?rule=CONFLICT_CULTIVATED_TO_CONSTRUCTION",
               "district-office").status_code == 403  # filtering by a column it may not read
    hazards = get(twin, "/twin/api/layers/hazard_points.geojson", "district-office").json()["features"]
    assert len(hazards) == inside["hazards"].num_rows > 0
    assert all(set(f["properties"]) == {"hazard_id", "district_code"} for f in hazards)
    districts = get(twin, "/twin/api/districts", "district-office").json()
    assert [d["code"] for d in districts] == [DISTRICT]
    indicators = get(twin, "/twin/api/indicators", "district-office").json()
    assert [r["code"] for r in indicators["rows"]] == [DISTRICT]  # not even the region-wide row
    assert [i["id"] for i in indicators["indicators"]] == ["forest_cover"]
    building = inside["buildings"].column("building_id")[0].as_py()
    assert set(get(twin, f"/twin/api/buildings/{quote(building, safe='')}", "district-office").json()) <= \
        {"building_id", "district_code", "height_m"} | PLACE
    assert get(twin, "/twin/buildings/tileset.json", "district-office").status_code == 403  # built for all districts
    manifest = get(twin, "/twin/api/manifest", "district-office").json()
    assert manifest["survey_years"] == [2019, 2023] and manifest["buildings"] is None
    (own_district,) = inside["districts"].to_pylist()
    assert manifest["region"] == {"west": own_district["bbox_xmin"], "south": own_district["bbox_ymin"],
                                  "east": own_district["bbox_xmax"], "north": own_district["bbox_ymax"]}
    hits = get(twin, "/twin/api/search?q=渝中", "district-office").json()["results"]
    assert [(h["kind"], h["id"]) for h in hits] == [("district", DISTRICT)]


def test_a_district_office_gets_not_one_byte_of_another_district(twin: dict) -> None:
    """Every JSON answer is scanned for the ids and names of everything outside the grant; asking for a foreign
    parcel, building or point looks exactly like asking for one that does not exist."""
    outside = twin["lake"]["outside"]
    foreign_parcel = outside["gold"].to_pylist()[0]
    foreign_building = outside["buildings"].column("building_id")[0].as_py()
    foreign_point, _ = inner_point(foreign_parcel["geometry"])
    foreign_name = outside["districts"].column("name")[0].as_py()
    scanned = ["/viewer/session", "/viewer/defaults.json", "/twin/api/manifest", "/twin/api/districts",
               "/twin/api/indicators", "/twin/api/conflicts?limit=10000", "/twin/api/legend",
               "/twin/api/layers/hazard_points.geojson", "/twin/api/layers/control_lines.geojson",
               "/twin/api/layers/districts.geojson", f"/twin/api/search?q={foreign_name[:2]}",
               "/twin/api/search?q=5001", "/twin/api/search?q=B"]
    for path in scanned:
        response = get(twin, path, "district-office")
        assert response.status_code == 200, (path, response.text[:200])
        leaked = [v for v in twin["lake"]["foreign"] if v in response.text]
        assert not leaked, (path, leaked[:5])

    def same_as_missing(path: str, value: str, missing: str) -> None:
        asked = get(twin, path.format(quote(value, safe="")), "district-office")
        nothing = get(twin, path.format(quote(missing, safe="")), "district-office")
        assert asked.status_code == nothing.status_code
        assert asked.text.replace(value, "?") == nothing.text.replace(missing, "?"), (asked.text, nothing.text)

    same_as_missing("/twin/api/parcels/{}", foreign_parcel["parcel_id"], foreign_parcel["parcel_id"][:6] + "999999")
    same_as_missing("/twin/api/buildings/{}", foreign_building, "NO-SUCH-BUILDING")
    for q in (foreign_parcel["parcel_id"], foreign_building):
        same_as_missing("/twin/api/search?q={}", q, "nothing-like-this")
    at = get(twin, f"/twin/api/parcel_at?lon={foreign_point.x}&lat={foreign_point.y}", "district-office")
    assert at.status_code == 404
    assert at.json()["description"] == f"no parcel at {foreign_point.x:.6f}, {foreign_point.y:.6f}"


@pytest.mark.parametrize("layers, year", [("parcels", None), ("parcels", 2019), ("conflicts", None),
                                          ("control_lines", None), ("parcels,control_lines,conflicts", None)])
def test_a_district_office_gets_no_pixel_of_another_district(twin: dict, layers: str, year: int | None) -> None:
    """Tiles away from the district are fully transparent for the district office where the governance center
    sees features; at the overview zoom (drawn from a raster of the whole layer) foreign parcels stay blank."""
    box = twin["lake"]["district_box"]
    key = {"parcels": "gold" if year is None else "silver", "conflicts": "conflicts",
           "control_lines": "lines"}[layers.split(",")[0]]
    rows = twin["lake"]["outside"][key]
    if year is not None:
        rows = rows.filter(pc.equal(rows.column("survey_year"), year))
    query = f"?year={year}" if year else ""
    checked = 0
    for z in (10, 13):
        seen = set()
        for row in rows.to_pylist():
            point, _ = inner_point(row["geometry"])
            tx, ty, _, _ = pixel_of(point.x, point.y, z)
            w, s, e, n = tile_box(z, tx, ty)
            if (tx, ty) in seen or not (e < box[0] or w > box[2] or n < box[1] or s > box[3]):
                continue
            seen.add((tx, ty))
            path = f"/twin/overlay/{layers}/{z}/{tx}/{ty}.png{query}"
            full = rgba(get(twin, path, "governance-center").content)
            if not full[..., 3].any():
                continue
            mine = get(twin, path, "district-office")
            assert mine.status_code == 200
            assert not rgba(mine.content)[..., 3].any(), f"{path}: pixels of another district"
            checked += 1
            if len(seen) >= 3:
                break
    assert checked >= 2

    overview = 8  # one tile over the district and its neighbours, sampled from the overview raster
    own = twin["lake"]["inside"][key].to_pylist()[0]
    point, _ = inner_point(own["geometry"])
    tx, ty, _, _ = pixel_of(point.x, point.y, overview)
    path = f"/twin/overlay/{layers}/{overview}/{tx}/{ty}.png{query}"
    full, mine = rgba(get(twin, path, "governance-center").content), rgba(get(twin, path, "district-office").content)
    foreign = [inner_point(r["geometry"]) for r in rows.to_pylist()]
    room = 3 * 360 / (256 * 2 ** overview)
    blank = 0
    for p, margin in foreign:
        x, y, col, r = pixel_of(p.x, p.y, overview)
        if (x, y) == (tx, ty) and margin > room and full[r, col, 3] and not (
                box[0] - room < p.x < box[2] + room and box[1] - room < p.y < box[3] + room):
            assert mine[r, col, 3] == 0, (p, "a foreign feature drawn")
            blank += 1
    assert blank or layers == "control_lines"  # control lines are drawn from polygons, never from the overview


# --- the session cookie ---------------------------------------------------------------------------------------
def test_sign_in_sets_an_httponly_strict_expiring_cookie_and_is_audited(twin: dict,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    token = twin["tokens"]["governance-center"]
    response = httpx.post(twin["url"] + "/viewer/signin", json={"token": token}, timeout=30)
    assert response.status_code == 200 and response.json()["department"] == "governance-center"
    (header,) = response.headers.get_list("set-cookie")
    name_value, *attributes = [part.strip() for part in header.split(";")]
    flags = {a.split("=")[0].lower(): (a.split("=", 1)[1] if "=" in a else True) for a in attributes}
    assert name_value.startswith(f"{sessions.COOKIE_NAME}=")
    assert flags["httponly"] is True and flags["samesite"].lower() == "strict" and flags["path"] == "/"
    assert int(flags["max-age"]) == 12 * 3600 and "secure" not in flags  # plain http here; https gets Secure
    expires = parsedate_to_datetime(flags["expires"])
    assert abs((expires - datetime.now(UTC)).total_seconds() - 12 * 3600) < 60
    assert response.headers["cache-control"] == "no-store"
    key = sessions.key_file()
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and key.parent == twin["home"] / "access"

    monkeypatch.setenv("ONEMAP_SESSION_HOURS", "1.5")
    shorter = httpx.post(twin["url"] + "/viewer/signin", json={"token": token}, timeout=30)
    assert "Max-Age=5400" in shorter.headers["set-cookie"]

    refused = [httpx.post(twin["url"] + "/viewer/signin", json={"token": token[:-1] + "x"}, timeout=30),
               httpx.post(twin["url"] + "/viewer/signin", data={"token": token}, timeout=30)]  # a form post
    assert [r.status_code for r in refused] == [401, 400]
    assert all("set-cookie" not in r.headers for r in refused)

    out = httpx.post(twin["url"] + "/viewer/signout", timeout=30)
    assert out.status_code == 303 and out.headers["location"] == "/viewer/signin"
    assert "Max-Age=0" in out.headers["set-cookie"] and sessions.COOKIE_NAME in out.headers["set-cookie"]

    twin["app"].state.audit.flush()
    rows = [r for r in read_audit(limit=100_000).to_pylist() if r["endpoint"] == "/viewer/signin"]
    assert ("governance-center", 200) in {(r["department"], r["status"]) for r in rows}
    assert (None, 401) in {(r["department"], r["status"]) for r in rows}
    secret = token.split("_", 2)[2]
    assert [r["request_id"] for r in rows if secret in json.dumps(r, default=str)] == []  # nor is the token


def test_tampered_and_expired_sessions_are_refused(twin: dict) -> None:
    cookie = twin["cookies"]["district-office"]
    token_id, department_id, expiry, signature = cookie.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    later = str(int(expiry) + 86_400)
    other = grants.load()["departments"]["governance-center"]["id"]
    for forged in (f"{token_id}.{department_id}.{expiry}.{flipped}", f"{token_id}.{department_id}.{later}.{signature}",
                   f"{token_id}.{other}.{expiry}.{signature}", "garbage", ""):
        response = httpx.get(twin["url"] + "/twin/api/manifest", headers={"Cookie": f"{sessions.COOKIE_NAME}={forged}"},
                             timeout=30)
        assert response.status_code == 401, forged
    past = sessions.encode(token_id, department_id, datetime.now(UTC) - timedelta(seconds=1))
    future = sessions.encode(token_id, department_id, datetime.now(UTC) + timedelta(minutes=5))
    for value, status in ((past, 401), (future, 200)):  # a well-signed session counts only until it expires
        response = httpx.get(twin["url"] + "/twin/api/manifest", headers={"Cookie": f"{sessions.COOKIE_NAME}={value}"},
                             timeout=30)
        assert response.status_code == status


def _status(twin: dict, token: str | None = None, cookie: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {"Cookie": f"{sessions.COOKIE_NAME}={cookie}"}
    return httpx.get(twin["url"] + "/twin/api/districts", headers=headers, timeout=30).status_code


def test_sessions_die_with_their_token_and_department(twin: dict) -> None:
    grants.create_department("temporary")
    grants.grant("temporary", "silver/districts")
    first_id, first = grants.issue_token("temporary")
    _, second = grants.issue_token("temporary")
    sessions_of = {t: sign_in(twin["url"], t) for t in (first, second)}
    assert {_status(twin, token=first), _status(twin, cookie=sessions_of[first])} == {200}

    grants.revoke_token(first_id)  # a revoked token's session ends with it; the other token lives on
    assert (_status(twin, token=first), _status(twin, cookie=sessions_of[first])) == (401, 401)
    assert (_status(twin, token=second), _status(twin, cookie=sessions_of[second])) == (200, 200)

    assert grants.delete_department("temporary") == 1
    assert (_status(twin, token=second), _status(twin, cookie=sessions_of[second])) == (401, 401)

    grants.create_department("temporary")  # same name, same grants: a new identity
    grants.grant("temporary", "silver/districts")
    assert (_status(twin, token=second), _status(twin, cookie=sessions_of[second])) == (401, 401)
    _, fresh = grants.issue_token("temporary")
    assert _status(twin, cookie=sign_in(twin["url"], fresh)) == 200
    refused = httpx.post(twin["url"] + "/viewer/signin", json={"token": second}, timeout=30)
    assert refused.status_code == 401


def test_an_expiring_token_ends_its_sessions_with_it(twin: dict) -> None:
    _, token = grants.issue_token("survey-only", timedelta(seconds=4))
    response = httpx.post(twin["url"] + "/viewer/signin", json={"token": token}, timeout=30)
    assert response.status_code == 200 and int(re.search(r"Max-Age=(\d+)", response.headers["set-cookie"])[1]) <= 4
    cookie = response.cookies[sessions.COOKIE_NAME]
    assert (_status(twin, token=token), _status(twin, cookie=cookie)) == (403, 403)  # valid, just not granted
    deadline = datetime.fromisoformat(response.json()["expires_at"])
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)
    assert (_status(twin, token=token), _status(twin, cookie=cookie)) == (401, 401)


@pytest.mark.timeout(600)
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: run `make setup`")
def test_the_page_of_a_district_office_shows_its_grants_and_asks_for_nothing_else(twin: dict) -> None:
    with browser_session(twin["url"], 960, 640) as session:
        session.sign_in(twin["tokens"]["district-office"])
        session.requests.clear()
        session.open(timeout_s=240)
        page = session.page
        assert page.locator("#who-name").inner_text() == "district-office"
        unavailable = page.locator("#layer-tree li.unavailable").evaluate_all("(ls) => ls.map((l) => l.dataset.layer)")
        assert unavailable == ["buildings"]  # granted for one district only: the region's 3D Tiles are not
        assert not [u for u in session.requests if "/twin/buildings/" in u]
        assert {re.search(r"/twin/overlay/([^/]+)/", u)[1] for u in session.requests if "/twin/overlay/" in u} <= \
            {"imagery,parcels,control_lines,conflicts", "imagery,control_lines,conflicts"}
        assert page.locator("#indicator-chart g.row").count() == 1
        assert session.console_errors == [] and page.evaluate("() => twin.errors") == []
        assert session.foreign_requests() == []
