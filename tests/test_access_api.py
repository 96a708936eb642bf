"""The department API against a real uvicorn server: OWSLib, pystac-client, SQL, and every attack of issue 6.

Each attack must be refused with the right status and a reason, and recorded in the audit table.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.access.audit import read_audit
from tests.api_server import GRID_SIDE, STAC_COLLECTIONS, ApiServer, api_server
from twin_viewer.server.app import ApiConfig

CONFIG = ApiConfig(sql_timeout_s=3.0, sql_max_rows=1000, items_max_limit=500, audit_interval_s=60)
WEST_BBOX = "105.5,28.5,105.54,28.54"  # 10×10 grid cells in district 500103 (columns 0-9)
EAST_BBOX = "105.58,28.5,105.62,28.54"  # 10×10 cells in district 500112 (columns 20-29)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server(tmp_path_factory.mktemp("api") / "home", CONFIG) as server:
        yield server


def get(api: ApiServer, path: str, department: str | None = "housing", **params) -> httpx.Response:
    headers = api.headers(department) if department else {}
    return httpx.get(api.url + path, headers=headers, params=params or None, timeout=30)


def sql(api: ApiServer, query: str, department: str = "housing", fmt: str = "json") -> httpx.Response:
    return httpx.post(f"{api.url}/sql", headers=api.headers(department), json={"sql": query, "format": fmt},
                      timeout=30)


def audit_rows(api: ApiServer) -> list[dict]:
    api.flush_audit()
    return read_audit(limit=100_000).to_pylist()


# --- auth ---------------------------------------------------------------------------------------------------

def test_no_bad_or_revoked_token_is_401(api: ApiServer) -> None:
    for headers in ({}, {"Authorization": "Bearer omt_000000000000_" + "x" * 43}, {"Authorization": "Basic abc"},
                    {"Authorization": f"Bearer {api.revoked}"}):
        response = httpx.get(f"{api.url}/collections", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "token" in response.json()["description"]
    assert httpx.post(f"{api.url}/sql", json={"sql": "select 1"}).status_code == 401
    assert httpx.get(f"{api.url}/stac/search").status_code == 401


def test_ungranted_and_missing_tables_get_the_same_403(api: ApiServer) -> None:
    ungranted, missing = get(api, "/collections/buildings", "agriculture"), get(api, "/collections/nope", "agriculture")
    assert ungranted.status_code == missing.status_code == 403
    assert (ungranted.json()["description"].replace("buildings", "X")
            == missing.json()["description"].replace("nope", "X"))
    assert get(api, "/collections", "transport").json()["collections"] == []
    assert get(api, "/collections/parcels/items", "transport").status_code == 403
    assert get(api, "/stac/search", "agriculture").status_code == 403
    for table in ("hazard_points", "no_such_table"):
        response = sql(api, f"select * from {table}", "agriculture")
        assert response.status_code == 403 and "not granted" in response.json()["description"]


def test_columns_outside_the_grant_are_403_and_never_listed(api: ApiServer) -> None:
    features = get(api, "/collections/parcels/items", "agriculture", limit=3).json()["features"]
    assert set(features[0]["properties"]) == {"parcel_id", "survey_year", "land_class_code"}
    assert get(api, "/collections/parcels/items", "agriculture", properties="area_m2").status_code == 403
    assert sql(api, "select area_m2 from parcels", "agriculture").status_code == 403
    star = sql(api, "select * from parcels limit 1", "agriculture").json()
    assert set(star[0]) == {"parcel_id", "survey_year", "land_class_code", "geometry", "bbox_xmin", "bbox_ymin",
                            "bbox_xmax", "bbox_ymax"}


def test_district_restricted_department_sees_no_rows_of_another_district(api: ApiServer) -> None:
    assert get(api, "/collections/parcels/items", "agriculture", bbox=WEST_BBOX).json()["features"] == []
    assert len(get(api, "/collections/parcels/items", "agriculture", bbox=EAST_BBOX, limit=500).json()["features"]) \
        == 11 * 11  # edge-touching boxes intersect too
    assert get(api, "/collections/parcels/items/G00000000~2023", "agriculture").status_code == 404
    assert get(api, "/collections/parcels/items/G00000000~2023", "housing").status_code == 200
    count = sql(api, "select count(*) n from parcels", "agriculture").json()[0]["n"]
    assert count == GRID_SIDE * GRID_SIDE // 2
    assert sql(api, "select count(*) n from parcels where parcel_id = 'G00000000'", "agriculture").json()[0]["n"] == 0


# --- OGC API – Features -------------------------------------------------------------------------------------

def test_owslib_lists_collections_and_reads_features_with_bbox_and_paging(api: ApiServer) -> None:
    from owslib.ogcapi.features import Features

    client = Features(api.url, headers=api.headers("housing"))
    assert "parcels" in client.feature_collections()
    assert any(c.endswith("/conf/geojson") for c in client.conformance()["conformsTo"])
    page = client.collection_items("parcels", bbox=[105.5, 28.5, 105.54, 28.54], limit=30)
    assert page["numberReturned"] == 30 and len(page["features"]) == 30
    ids = {f["id"] for f in page["features"]}
    second = client.collection_items("parcels", bbox=[105.5, 28.5, 105.54, 28.54], limit=30, offset=30)
    assert len(second["features"]) == 30 and not ids & {f["id"] for f in second["features"]}
    for feature in page["features"]:
        xs = [x for x, _ in feature["geometry"]["coordinates"][0]]
        assert min(xs) <= 105.54 and max(xs) >= 105.5


def test_next_links_page_through_every_feature_in_the_bbox(api: ApiServer) -> None:
    url, seen = f"{api.url}/collections/parcels/items?bbox={WEST_BBOX}&limit=37", []
    while url:
        body = httpx.get(url, headers=api.headers("housing")).json()
        seen += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert len(seen) == len(set(seen)) == 11 * 11  # boxes touching the bbox edges intersect it too


def test_tables_without_granted_geometry_are_attribute_collections(api: ApiServer) -> None:
    """Gold tables such as district_indicators have no geometry: served as features with null geometry."""
    assert "stac_assets" in {c["id"] for c in get(api, "/collections").json()["collections"]}
    body = get(api, "/collections/stac_assets/items", limit=3).json()
    assert len(body["features"]) == 3 and all(f["geometry"] is None for f in body["features"])
    assert body["features"][0]["id"] == "dem-srtm~dem-srtm-000~visual"
    response = get(api, "/collections/stac_assets/items", bbox="106,29,107,30")
    assert response.status_code == 400 and "no geometry" in response.json()["description"]


def collection_ids(api: ApiServer) -> set[str]:
    return {c["id"] for c in get(api, "/collections").json()["collections"]}


def test_a_granted_gold_table_appears_once_published_without_a_restart(api: ApiServer) -> None:
    from lake import delta_io, releases
    from lake.access.catalog import RESOLVE_EVERY_S
    from lake.access import grants
    from lake.registry import GOLD_DISTRICT_INDICATORS as SPEC

    grants.grant("housing", "gold/district_indicators")
    assert "district_indicators" not in {c["id"] for c in get(api, "/collections").json()["collections"]}
    row = {f.name: None for f in SPEC.schema} | {"district_code": "500112", "district_name": "渝北区",
                                                  "survey_year": 2023, "forest_cover": 0.42}
    delta_io.append(SPEC, pa.Table.from_pylist([row], schema=SPEC.schema))
    time.sleep(RESOLVE_EVERY_S)
    assert "district_indicators" not in collection_ids(api)  # written, not released: invisible
    releases.log_build("b1", releases.PUBLISHED, None, {SPEC.key: delta_io.open_table(SPEC).version()}, [])
    time.sleep(RESOLVE_EVERY_S)
    assert "district_indicators" in collection_ids(api)
    feature = get(api, "/collections/district_indicators/items/500112").json()
    assert feature["properties"]["forest_cover"] == 0.42 and feature["properties"]["district_name"] == "渝北区"
    assert sql(api, "select district_name from district_indicators").json() == [{"district_name": "渝北区"}]
    assert get(api, "/collections/district_indicators", "agriculture").status_code == 403


def test_properties_selection_and_single_feature(api: ApiServer) -> None:
    body = get(api, "/collections/parcels/items", properties="land_class_code,area_m2", limit=2).json()
    assert all(set(f["properties"]) == {"land_class_code", "area_m2"} for f in body["features"])
    feature = get(api, "/collections/parcels/items/G00000041~2023").json()
    assert feature["properties"]["parcel_id"] == "G00000041" and feature["geometry"]["type"] == "Polygon"


def test_datetime_filters_collections_with_a_time_column(api: ApiServer) -> None:
    body = get(api, "/collections/stac_items/items", datetime="2024-01-01T00:00:00Z/2024-01-31T00:00:00Z",
               limit=100).json()
    assert len(body["features"]) == 8  # days 0, 10, 20, 30 of each collection
    response = get(api, "/collections/parcels/items", datetime="2024-01-01T00:00:00Z")
    assert response.status_code == 400 and "no time column" in response.json()["description"]


@pytest.mark.parametrize(("params", "reason"), [
    ({"bbox": "1,2,3"}, "4 finite numbers"),
    ({"bbox": "a,b,c,d"}, "4 comma-separated numbers"),
    ({"bbox": "106,30,105,29"}, "must not exceed"),
    ({"bbox": "106,29,107,95"}, "latitudes"),
    ({"bbox": "105.5,28.5,105.6,28.6' OR '1'='1"}, "numbers"),
    ({"datetime": "yesterday"}, "RFC 3339"),
    ({"datetime": "2024-02-01T00:00:00Z/2024-01-01T00:00:00Z"}, "start is after the end"),
    ({"datetime": "../.."}, "at least one end"),
    ({"limit": "-5"}, "positive integer"),
    ({"limit": "1;drop"}, "positive integer"),
    ({"offset": "x"}, "non-negative integer"),
    ({"filter": "1=1"}, "unknown query parameter"),
])
def test_malformed_parameters_are_400_with_the_reason(api: ApiServer, params: dict, reason: str) -> None:
    path = "/collections/stac_items/items" if "datetime" in params else "/collections/parcels/items"
    response = get(api, path, **params)
    assert response.status_code == 400
    assert reason in response.json()["description"]


def test_injection_through_ids_and_properties_reads_nothing(api: ApiServer) -> None:
    assert get(api, "/collections/parcels/items/G00000000' OR '1'='1~2023").status_code == 404
    assert get(api, "/collections/parcels;drop table x/items").status_code in (403, 404)
    assert get(api, "/collections/parcels/items", properties="parcel_id) FROM parcels; --").status_code == 403
    stac = httpx.post(f"{api.url}/stac/search", headers=api.headers("housing"),
                      json={"collections": ["x') OR 1=1 --"], "ids": ["' OR ''='"]})
    assert stac.status_code == 200 and stac.json()["features"] == []


def test_huge_limit_is_capped(api: ApiServer) -> None:
    body = get(api, "/collections/parcels/items", limit="999999999").json()
    assert body["numberReturned"] == CONFIG.items_max_limit
    response = sql(api, "select parcel_id from parcels limit 1000000000")
    assert response.status_code == 200
    assert len(response.json()) == CONFIG.sql_max_rows
    assert response.headers["x-onemap-truncated"] == "true"


def test_path_traversal_is_refused(api: ApiServer) -> None:
    host = urlsplit(api.url)
    for path in ("/collections/../../../etc/passwd", "/collections/..%2F..%2Fetc%2Fpasswd/items",
                 "/stac/collections/%2e%2e/%2e%2e/items", "/collections/parcels/items/..\\..\\x",
                 "/collections/parcels%00/items"):
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
        conn.request("GET", path, headers=api.headers("housing"))  # http.client sends the path as written
        response = conn.getresponse()
        assert response.status == 400, path
        assert b"path" in response.read()
        conn.close()


# --- SQL ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "reason"), [
    ("select 1; select 2", "stacked"),
    ("select * from parcels; drop table parcels", "stacked"),
    ("COPY (select * from parcels) TO '/tmp/onemap-leak.csv'", "only SELECT"),
    ("ATTACH '/tmp/onemap-other.db' AS other", "only SELECT"),
    ("select * from read_text('/etc/passwd')", "table functions"),
    ("select read_text('/etc/passwd')", "read_text"),
    ("select * from delta_scan('/etc')", "table functions"),
    ("PRAGMA database_list", "only SELECT"),
    ("INSTALL httpfs", "only SELECT"),
    ("SET lock_configuration = false", "only SELECT"),
])
def test_sql_attacks_are_refused(api: ApiServer, query: str, reason: str) -> None:
    response = sql(api, query)
    assert response.status_code == 400
    assert reason in response.json()["description"]
    assert not Path("/tmp/onemap-leak.csv").exists() and not Path("/tmp/onemap-other.db").exists()


def test_sql_formats(api: ApiServer) -> None:
    query = "select parcel_id, land_class_code, geometry from parcels order by parcel_id limit 3"
    assert sql(api, query).json()[0]["parcel_id"] == "G00000000"
    assert sql(api, query, fmt="csv").text.splitlines()[1].startswith('"G00000000","0101","POLYGON')
    assert sql(api, query, fmt="geojson").json()["features"][0]["geometry"]["type"] == "Polygon"
    table = pq.read_table(pa.BufferReader(sql(api, query, fmt="parquet").content))
    assert table.num_rows == 3 and table.column_names == ["parcel_id", "land_class_code", "geometry"]


def test_enormous_cross_join_stops_at_the_time_limit_and_the_server_stays_responsive(api: ApiServer) -> None:
    result: dict[str, httpx.Response] = {}
    runaway = threading.Thread(target=lambda: result.setdefault(
        "r", sql(api, "select count(*) from parcels a, parcels b, parcels c, parcels d")))
    started = time.monotonic()
    runaway.start()
    time.sleep(0.3)
    assert get(api, "/collections/parcels/items", limit=5).status_code == 200
    assert runaway.is_alive()  # answered while the runaway query was still running
    runaway.join(30)
    response = result["r"]
    assert response.status_code == 400
    assert "time limit" in response.json()["description"]
    assert time.monotonic() - started < CONFIG.sql_timeout_s + 5
    recorded = [r for r in audit_rows(api) if "parcels d" in (r["parameters"] or "")]
    assert [(r["status"], r["outcome"]) for r in recorded] == [(400, "timeout")]


# --- STAC API -----------------------------------------------------------------------------------------------

def test_pystac_client_searches_the_stac_api(api: ApiServer) -> None:
    from pystac_client import Client

    client = Client.open(f"{api.url}/stac/", headers=api.headers("housing"))
    assert {c.id for c in client.get_collections()} == set(STAC_COLLECTIONS)
    everything = list(client.search(collections=["sentinel-2-l2a"], limit=5).items())
    assert len(everything) == STAC_COLLECTIONS["sentinel-2-l2a"]  # four pages through POST next links
    assert len({i.id for i in everything}) == len(everything)
    found = client.search(collections=["sentinel-2-l2a"], bbox=[106.0, 29.0, 106.12, 29.2],
                          datetime="2024-01-01/2024-01-15", method="GET").item_collection()
    assert [i.id for i in found] == ["sentinel-2-l2a-000", "sentinel-2-l2a-001"]
    assert found[0].assets["visual"].roles == ["data"]
    assert client.search(collections=["sentinel-2-l2a"], limit=5).matched() == STAC_COLLECTIONS["sentinel-2-l2a"]
    assert list(client.search(datetime="2030-01-01/2030-12-31").items()) == []


def test_stac_documents_validate_against_the_stac_schemas(api: ApiServer) -> None:
    from lake.stac_schemas import validate_stac

    item = get(api, "/stac/collections/dem-srtm/items/dem-srtm-002").json()
    documents = [get(api, "/stac/").json(), get(api, "/stac/collections/dem-srtm").json(), item,
                 *get(api, "/stac/search", limit=3).json()["features"]]
    for document in documents:
        assert validate_stac(document).errors == (), document["id"]


# --- audit --------------------------------------------------------------------------------------------------

def raw_get(api: ApiServer, path: str) -> int:
    """GET with the path sent exactly as written (httpx would normalise '..')."""
    host = urlsplit(api.url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    conn.request("GET", path, headers=api.headers("housing"))
    status = conn.getresponse().status
    conn.close()
    return status


def test_every_attempt_is_in_the_audit_table(api: ApiServer) -> None:
    """One request per attack, each findable by a unique needle; each must be on record with its outcome."""
    revoked = {"Authorization": f"Bearer {api.revoked}"}
    attempts = [  # name, request, needle in endpoint or parameters, department, status, outcome
        ("no token", lambda: httpx.get(f"{api.url}/collections/au01"), "au01", None, 401, "refused"),
        ("revoked token", lambda: httpx.get(f"{api.url}/collections/au02", headers=revoked), "au02", None, 401,
         "refused"),
        ("table outside grant", lambda: get(api, "/collections/au03/items", "agriculture"), "au03", "agriculture",
         403, "refused"),
        ("column outside grant", lambda: sql(api, "select area_m2 from parcels -- au04", "agriculture"), "au04",
         "agriculture", 403, "refused"),
        ("other district", lambda: get(api, "/collections/parcels/items", "agriculture", bbox=WEST_BBOX, limit=4105),
         "limit=4105", "agriculture", 200, "ok"),
        ("injection", lambda: get(api, "/collections/parcels/items", bbox="1,2,3,4';drop table x;--au06"), "au06",
         "housing", 400, "bad_request"),
        ("stacked", lambda: sql(api, "select 1; select 'au07'"), "au07", "housing", 400, "bad_request"),
        ("copy", lambda: sql(api, "COPY (select 'au08') TO '/tmp/x.csv'"), "au08", "housing", 400, "bad_request"),
        ("attach", lambda: sql(api, "ATTACH '/tmp/au09.db'"), "au09", "housing", 400, "bad_request"),
        ("read_text", lambda: sql(api, "select * from read_text('/etc/passwd') -- au10"), "au10", "housing", 400,
         "bad_request"),
        ("delta_scan", lambda: sql(api, "select * from delta_scan('/tmp/au11')"), "au11", "housing", 400,
         "bad_request"),
        ("pragma", lambda: sql(api, "PRAGMA table_info('au12')"), "au12", "housing", 400, "bad_request"),
        ("huge limit", lambda: sql(api, "select parcel_id, 'au13' from parcels limit 99999999"), "au13", "housing",
         200, "ok"),
        ("bad datetime", lambda: get(api, "/stac/search", datetime="au14"), "au14", "housing", 400, "bad_request"),
        ("traversal", lambda: raw_get(api, "/collections/../../au15/passwd"), "au15", "housing", 400,
         "bad_request"),
    ]
    for attempt in attempts:
        attempt[1]()
    rows = audit_rows(api)
    for name, _, needle, department, status, outcome in attempts:
        found = [r for r in rows if needle in (r["endpoint"] or "") + (r["parameters"] or "")]
        assert len(found) == 1, name
        assert (found[0]["department"], found[0]["status"], found[0]["outcome"]) == (department, status, outcome), name
        assert found[0]["duration_ms"] > 0 and found[0]["at"] is not None
    capped = next(r for r in rows if "au13" in (r["parameters"] or ""))
    assert capped["rows"] == CONFIG.sql_max_rows and "capped" in capped["message"]
