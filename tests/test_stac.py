"""STAC feeds end to end: offline schema validation, static catalogs, incremental re-delivery, and a real STAC API
(stac-fastapi-pgstac on a throwaway PostgreSQL started by the test) searched through the `stac_api` reader."""

from __future__ import annotations

import copy
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from lake import delta_io
from lake.contracts import get_contract
from lake.errors import FeedReadError
from lake.ingest import ingest_source
from lake.registry import BRONZE, INGEST_LOG, QUARANTINE, STAC_ASSETS, STAC_ITEMS
from lake.stac_schemas import SHIPPED_DIR, schemas_dir, validate_stac
from tests.stac_api_server import PgstacServer, pgstac_unavailable, read_json

STAC_FIELDS = """
fields:
  item_id: id
  collection: {field: collection, default: uncollected}
  datetime: datetime
  start_datetime: start_datetime
  end_datetime: end_datetime
  cloud_cover: eo:cloud_cover
  gsd: gsd
  platform: platform
  epsg: epsg
  stac_version: stac_version
  properties: properties
  links: links
  self_href: self_href
"""


def stac_contract(write_contract, feed: str = "stac_test", fmt: str = "stac_catalog", extra: str = "") -> str:
    return write_contract(f"feed: {feed}\ntable: stac_items\nformat: {fmt}\nprune_missing: false\n"
                          f"region_check: 'off'\n{extra}{STAC_FIELDS}")


def versions() -> dict[str, int | None]:
    return {s.key: (t.version() if (t := delta_io.open_table(s)) else None)
            for s in (STAC_ITEMS, STAC_ASSETS, BRONZE["stac_items"], QUARANTINE["stac_items"])}


def quarantine_rules() -> list[tuple[str, str]]:
    return [(r["rule_id"], r["reason"]) for r in delta_io.read_table(QUARANTINE["stac_items"]).to_pylist()]


# --- offline schema validation ---------------------------------------------------------------------------------

def test_shipped_schemas_validate_core_without_shared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ONEMAP_SCHEMAS", str(tmp_path / "absent"))
    assert schemas_dir() == SHIPPED_DIR
    item = synthetic_item("a", "c1")
    assert validate_stac(item).valid
    assert validate_stac({**item, "stac_version": "1.0.0"}).valid
    missing = {k: v for k, v in item.items() if k != "id"}
    assert "'id' is a required property" in validate_stac(missing).reason
    declared = validate_stac({**item, "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"]})
    assert declared.valid and declared.unchecked_extensions  # not shipped: recorded, not failed


def test_real_invalid_objects_fail_with_the_schema_error(realdata: Path) -> None:
    expected = {
        "pystac-catalog-missing-stac_version.json": "'stac_version' is a required property",
        "pystac-client-invalid-collection.json": "'type' is a required property",
        "stac-validator-v100-bad-item-missing-id.json": "'id' is a required property",
        "stac-validator-1beta2-bad-eo-landsat8.json": "'pc:count' is a required property",  # pointcloud declared
        "stac-validator-v100-item-without-collection-link.json": "$.collection",
    }
    for name, message in expected.items():
        result = validate_stac(read_json(realdata / "stac/invalid" / name))
        assert not result.valid and message in result.reason, (name, result.reason)
    legacy = validate_stac(read_json(realdata / "stac/invalid/stac-validator-v090-CBERS_4_bad_links.json"))
    assert not legacy.core_available  # STAC 0.9.0: no local core schema, the reader migrates it first


# --- static catalogs --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("folder", ["stac-spec-v1.0.0", "stac-spec-v1.1.0_via_pystac"])
def test_official_example_catalogs_ingest(home: Path, realdata: Path, write_contract, folder: str) -> None:
    feed = stac_contract(write_contract)
    catalog = ingest_source(realdata / "stac" / folder / "catalog.json", get_contract(feed))
    # catalog.json reaches two items: proj-example (in landsat-8-l1) and the collectionless item
    assert (catalog.rows_read, catalog.rows_silver, catalog.rows_quarantined) == (2, 2, 0)
    items = {r["item_id"]: r for r in delta_io.read_table(STAC_ITEMS).to_pylist()}
    assert items["proj-example"]["collection"] == "landsat-8-l1"
    assert items["CS3-20160503_132131_08"]["collection"] == "uncollected"
    assert items["proj-example"]["epsg"] == 32614
    assert (items["CS3-20160503_132131_08"]["gsd"], items["CS3-20160503_132131_08"]["platform"]) == (0.512,
                                                                                                   "cool_sat2")
    assert items["proj-example"]["datetime"] is not None
    assert items["proj-example"]["stac_version"] == folder.removeprefix("stac-spec-v")[:5]
    assets = delta_io.read_table(STAC_ASSETS)
    assert assets.num_rows == 7  # proj-example: B1, B8; the collectionless item: 5
    assert all(h.startswith(("/", "http")) for h in assets.column("href").to_pylist())  # absolute hrefs
    assert sorted(set(assets.column("collection").to_pylist())) == ["landsat-8-l1", "uncollected"]  # = the items'
    # collection.json links three documents of the same item id: every occurrence is quarantined
    collection = ingest_source(realdata / "stac" / folder / "collection.json", get_contract(feed))
    assert (collection.rows_read, collection.rows_silver, collection.rows_quarantined) == (3, 0, 3)
    assert {rule for rule, _ in quarantine_rules()} == {"DUPLICATE_KEY"}


def test_real_producer_items_and_nested_catalog(home: Path, realdata: Path, write_contract) -> None:
    feed = stac_contract(write_contract)
    stac = realdata / "stac"
    sources = {
        "pystac/cbers4-catalog-test-case-5": (1, 6),  # a folder: its catalog.json, 5 levels deep
        "stactools-sentinel2/S2A_T07HFE_20190212T192646_L2A.json": (1, 41),
        "stactools-cop-dem/Copernicus_DSM_COG_10_N53_00_W115_00_DEM.json": (1, 14),
        "stactools-esa-worldcover/ESA_WorldCover_10m_2021_v200_N00E006.json": (1, 2),
        "stac-validator/v100-item_collection.json": (2, 12),  # an ItemCollection (API response)
    }
    for name, (n_items, n_assets) in sources.items():
        before = delta_io.read_table(STAC_ASSETS).num_rows
        result = ingest_source(stac / name, get_contract(feed))
        assert (result.rows_read, result.rows_silver) == (n_items, n_items), (name, quarantine_rules())
        assert delta_io.read_table(STAC_ASSETS).num_rows - before == n_assets, name
    items = {r["item_id"]: r for r in delta_io.read_table(STAC_ITEMS).to_pylist()}
    assert items["CBERS_4_MUX_20190510_027_069_L2"]["collection"] == "CBERS4MUX"
    assert items["S2A_T07HFE_20190212T192646_L2A"]["cloud_cover"] == pytest.approx(51.580326)
    dem = delta_io.read_table(STAC_ASSETS).filter(pc.equal(pc.field("item_id"),
                                                           "Copernicus_DSM_COG_10_N53_00_W115_00_DEM"))
    assert "image/tiff; application=geotiff; profile=cloud-optimized" in dem.column("media_type").to_pylist()


def test_invalid_real_files_are_quarantined_with_the_schema_error(home: Path, realdata: Path,
                                                                   write_contract) -> None:
    feed = stac_contract(write_contract)
    for path in sorted((realdata / "stac/invalid").glob("*.json")):
        result = ingest_source(path, get_contract(feed))
        assert (result.rows_silver, result.rows_quarantined) == (0, 1), path.name
    reasons = quarantine_rules()
    assert {rule for rule, _ in reasons} == {"STAC_SCHEMA"}
    text = "\n".join(reason for _, reason in reasons)
    for expected in ("'id' is a required property", "'stac_version' is a required property",
                     "'type' is a required property", "view:off_nadir", "'pc:count' is a required property"):
        assert expected in text
    assert "stac-validator-v100-bad-item-missing-id.json" in text  # the reason names the file
    assert delta_io.read_table(STAC_ITEMS).num_rows == 0
    bronze = [dict(r["attributes"]) for r in delta_io.read_table(BRONZE["stac_items"]).to_pylist()]
    assert len(bronze) == 6  # nothing lost: the whole item is in bronze, assets included
    no_id = next(a for a in bronze if a["self_href"].endswith("bad-item-missing-id.json"))
    assert no_id["id"] is None and "analytic" in json.loads(no_id["assets"])


def test_invalid_json_fails_the_batch_naming_the_file(home: Path, write_contract) -> None:
    feed = stac_contract(write_contract)
    broken = home / "landing/imagery/broken/catalog.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"type": "Catalog", "id": ', encoding="utf-8")
    with pytest.raises(FeedReadError, match="catalog.json"):
        ingest_source(broken.parent, get_contract(feed))
    log = delta_io.read_table(INGEST_LOG).to_pylist()
    assert [r["status"] for r in log] == ["failed"] and "cannot read STAC JSON" in log[0]["message"]
    assert delta_io.open_table(STAC_ITEMS) is None


def test_bad_items_and_links_of_a_readable_catalog_do_not_stop_the_good_ones(home: Path, write_contract) -> None:
    feed = stac_contract(write_contract)
    root = write_catalog(home / "landing/imagery/cat", [synthetic_item(f"s{i}", "scenes") for i in range(4)])
    no_id = synthetic_item("gone", "scenes")
    del no_id["id"]
    (root.parent / "scenes/noid.json").write_text(json.dumps(no_id), encoding="utf-8")
    (root.parent / "scenes/truncated.json").write_text('{"type": "Feature"', encoding="utf-8")
    odd = synthetic_item("odd", "scenes")
    odd["id"], odd["properties"]["platform"] = 7, ["a"]  # wrong types: quarantined, the batch still builds
    (root.parent / "scenes/odd.json").write_text(json.dumps(odd), encoding="utf-8")
    collection = read_json(root.parent / "scenes/collection.json")
    collection["links"] += [{"rel": "item", "href": f"./{name}.json"} for name in ("noid", "truncated", "missing",
                                                                                  "odd")]
    (root.parent / "scenes/collection.json").write_text(json.dumps(collection), encoding="utf-8")
    result = ingest_source(root.parent, get_contract(feed))
    assert (result.rows_read, result.rows_silver, result.rows_quarantined) == (8, 4, 4)
    reasons = dict((reason.split(":", 1)[0].rsplit("/", 1)[-1], rule) for rule, reason in quarantine_rules())
    assert reasons == {"noid.json": "STAC_SCHEMA", "truncated.json": "STAC_UNREADABLE",
                       "missing.json": "STAC_UNREADABLE", "odd.json": "STAC_SCHEMA"}


def test_same_catalog_twice_is_a_no_op(home: Path, write_contract) -> None:
    feed = stac_contract(write_contract)
    root = write_catalog(home / "landing/imagery/cat", [synthetic_item(f"s{i}", "scenes") for i in range(3)])
    assert ingest_source(root.parent, get_contract(feed)).status == "ingested"
    before = versions()
    assert ingest_source(root.parent, get_contract(feed)).status == "skipped"
    assert versions() == before


def test_updated_item_replaces_its_row_and_unchanged_items_keep_their_lineage(home: Path, write_contract) -> None:
    feed = stac_contract(write_contract)
    items = [synthetic_item(f"s{i}", "scenes") for i in range(5)]
    root = write_catalog(home / "landing/imagery/cat", items)
    first = ingest_source(root.parent, get_contract(feed))
    items[2]["properties"]["eo:cloud_cover"] = 77.0
    write_catalog(home / "landing/imagery/cat", items)
    second = ingest_source(root.parent, get_contract(feed))
    assert second.status == "ingested"
    rows = {r["item_id"]: r for r in delta_io.read_table(STAC_ITEMS).to_pylist()}
    assert len(rows) == 5 and rows["s2"]["cloud_cover"] == 77.0
    assert {k: r["_batch_id"] for k, r in rows.items()} == {
        "s0": first.batch_id, "s1": first.batch_id, "s2": second.batch_id, "s3": first.batch_id,
        "s4": first.batch_id}
    assets = delta_io.read_table(STAC_ASSETS).to_pylist()
    assert len(assets) == 10
    assert {(a["item_id"], a["_batch_id"]) for a in assets if a["_batch_id"] == second.batch_id} == {
        ("s2", second.batch_id)}


# --- STAC API ---------------------------------------------------------------------------------------------------

REAL_API_LOAD = {  # collection file -> item files (all real, from ../shared/realdata/stac); 9 items, 6 collections
    "stac-spec-v1.0.0/collection.json": ["stac-validator/v100-item_collection.json",
                                         "stac-spec-v1.0.0/extended-item.json"],
    "pystac/collection-landsat8-item-assets.json": [
        "stac-spec-v1.1.0_via_pystac/extensions-collection/proj-example/proj-example.json",
        "stac-validator/example-catalog/eo/landsat-8-l1/LC08_L1GT_120046_20181012_20181012_01_RT/"
        "LC08_L1GT_120046_20181012_20181012_01_RT.json"],
    "pystac/cbers4-catalog-test-case-5/CBERS4/CBERS4MUX/collection.json": [
        "pystac/cbers4-catalog-test-case-5/CBERS4/CBERS4MUX/CBERS4-MUX-027/CBERS4-MUX-027/069/"
        "CBERS_4_MUX_20190510_027_069_L2/CBERS_4_MUX_20190510_027_069_L2.json"],
    "stactools-cop-dem/collection-cop-dem-glo-30.json": [
        "stactools-cop-dem/Copernicus_DSM_COG_10_N53_00_W115_00_DEM.json"],
    "stactools-esa-worldcover/collection-esa-worldcover.json": [
        "stactools-esa-worldcover/ESA_WorldCover_10m_2021_v200_N00E006.json"],
    "stactools-sentinel2/collection-sentinel2-l2a-example.json": [
        "stactools-sentinel2/S2A_T07HFE_20190212T192646_L2A.json"],
}


def real_api_content(stac: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    collections, items = [], []
    for collection_file, item_files in REAL_API_LOAD.items():
        collection = read_json(stac / collection_file)
        collections.append(collection)
        for item_file in item_files:
            doc = read_json(stac / item_file)
            for item in doc["features"] if doc.get("type") == "FeatureCollection" else [doc]:
                items.append({**item, "collection": collection["id"]})
    return collections, items


@pytest.fixture(scope="module")
def pgstac_api() -> Iterator[str]:
    reason = pgstac_unavailable()
    if reason:
        pytest.skip(reason)
    from tests.conftest import REALDATA
    if not REALDATA.exists():
        pytest.skip(f"real public test files not found at {REALDATA}")
    with PgstacServer() as server:
        server.load(*real_api_content(REALDATA / "stac"))
        yield server.url


def api_contract(write_contract, url: str, options: dict[str, Any], feed: str = "api_feed") -> str:
    return stac_contract(write_contract, feed, "stac_api", f"url: {url}\noptions: {json.dumps(options)}\n")


def test_api_search_pages_through_a_real_pgstac_server(home: Path, write_contract, pgstac_api: str) -> None:
    feed = api_contract(write_contract, pgstac_api, {"limit": 2})  # 9 items in 5 pages
    result = ingest_source(pgstac_api, get_contract(feed))
    assert (result.rows_read, result.rows_silver, result.rows_quarantined) == (9, 9, 0), quarantine_rules()
    items = delta_io.read_table(STAC_ITEMS)
    assert sorted(set(items.column("collection").to_pylist())) == [
        "CBERS4MUX", "cop-dem-glo-30", "esa-worldcover", "landsat-8-l1", "sentinel2-l2a-example",
        "simple-collection"]
    assert set(items.column("_source_uri").to_pylist()) == {pgstac_api}
    assert delta_io.read_table(STAC_ASSETS).num_rows > 9
    before = versions()
    again = ingest_source(pgstac_api, get_contract(feed))
    assert again.status == "skipped" and versions() == before  # same items: a no-op poll


@pytest.mark.parametrize(("options", "expected"), [
    ({"collections": ["simple-collection"], "limit": 1}, {"20201211_223832_CS2", "20201211_223832_CS2_A",
                                                          "20201211_223832_CS2_B"}),
    ({"bbox": [85.0, 26.0, 95.0, 29.0]}, {"CBERS_4_MUX_20190510_027_069_L2"}),
    ({"datetime": "2018-01-01T00:00:00Z/2018-12-31T23:59:59Z", "method": "GET"},
     {"proj-example", "LC08_L1GT_120046_20181012_20181012_01_RT"}),
    ({"collections": ["simple-collection"], "max_items": 2, "limit": 1}, 2),
])
def test_api_search_filters(home: Path, write_contract, pgstac_api: str, options: dict[str, Any],
                            expected: set[str] | int) -> None:
    feed = api_contract(write_contract, pgstac_api, options)
    result = ingest_source(pgstac_api, get_contract(feed))
    ids = set(delta_io.read_table(STAC_ITEMS).column("item_id").to_pylist())
    assert (len(ids) == expected) if isinstance(expected, int) else (ids == expected)
    assert result.rows_quarantined == 0


class FlakyApi(ThreadingHTTPServer):
    """A minimal STAC API whose second search page fails: HTTP 500, or an answer slower than the client waits."""

    daemon_threads = True
    block_on_close = False  # do not wait for the handlers still sleeping past the client's timeout

    def __init__(self, failure: str) -> None:
        self.failure = failure
        self.page2_requests = 0
        super().__init__(("127.0.0.1", 0), _FlakyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FlakyHandler(BaseHTTPRequestHandler):
    server: FlakyApi

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        base = self.server.url
        if self.path in ("/", ""):
            self._json({"type": "Catalog", "id": "flaky", "description": "x", "stac_version": "1.0.0",
                        "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                                       "https://api.stacspec.org/v1.0.0/item-search"],
                        "links": [{"rel": "search", "href": f"{base}/search", "type": "application/geo+json",
                                   "method": "GET"}, {"rel": "self", "href": f"{base}/"}]})
        elif "page=2" in self.path:
            self.server.page2_requests += 1
            if self.server.failure == "timeout":  # a good answer, but far too late
                threading.Event().wait(3)
                self._json({"type": "FeatureCollection", "features": [synthetic_item("p2", "c")], "links": []})
            else:
                self._json({"code": "ServerError", "description": "boom"}, status=500)
        else:
            self._json({"type": "FeatureCollection", "features": [synthetic_item("p1", "c")],
                        "links": [{"rel": "next", "href": f"{base}/search?page=2", "method": "GET"}]})


@pytest.mark.parametrize("failure", ["http500", "timeout"])
def test_api_failing_mid_paging_is_retried_then_fails_with_nothing_written(home: Path, write_contract,
                                                                           failure: str) -> None:
    server = FlakyApi(failure)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        feed = api_contract(write_contract, server.url,
                            {"method": "GET", "retries": 2, "backoff_s": 0.01, "timeout_s": 0.5})
        expected = "Read timed out" if failure == "timeout" else "too many 500 error responses"
        with pytest.raises(FeedReadError, match=f"nothing written.*{expected}"):
            ingest_source(server.url, get_contract(feed))
        assert server.page2_requests == 3  # the first try and two retries
    finally:
        server.shutdown()
        server.server_close()
    assert versions() == dict.fromkeys(versions())  # no STAC table was even created
    log = delta_io.read_table(INGEST_LOG).to_pylist()
    assert [r["status"] for r in log] == ["failed"] and server.url in log[0]["message"]


# --- helpers ------------------------------------------------------------------------------------------------------

def synthetic_item(item_id: str, collection: str, x: float = 106.55, y: float = 29.56) -> dict[str, Any]:
    """A small valid STAC 1.1.0 item (with one COG asset)."""
    ring = [[x, y], [x + 0.1, y], [x + 0.1, y + 0.1], [x, y + 0.1], [x, y]]
    return {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": [], "id": item_id, "collection": collection,
        "geometry": {"type": "Polygon", "coordinates": [ring]}, "bbox": [x, y, x + 0.1, y + 0.1],
        "properties": {"datetime": "2023-05-01T03:00:00Z", "eo:cloud_cover": 12.5, "gsd": 10.0, "platform": "demo"},
        "links": [{"rel": "collection", "href": "./collection.json", "type": "application/json"}],
        "assets": {"visual": {"href": f"./{item_id}.tif", "type": "image/tiff; application=geotiff",
                              "roles": ["visual"]},
                   "thumbnail": {"href": f"./{item_id}.png", "type": "image/png", "roles": ["thumbnail"]}},
    }


def write_catalog(folder: Path, items: list[dict[str, Any]]) -> Path:
    """catalog.json -> scenes/collection.json -> scenes/<id>.json; returns the catalog's path."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "scenes").mkdir(parents=True)
    catalog = {"type": "Catalog", "stac_version": "1.1.0", "id": "test", "description": "test catalog",
               "links": [{"rel": "child", "href": "./scenes/collection.json"}]}
    collection = {"type": "Collection", "stac_version": "1.1.0", "id": "scenes", "description": "scenes",
                  "license": "CC-BY-4.0",
                  "extent": {"spatial": {"bbox": [[105.0, 28.0, 111.0, 33.0]]},
                             "temporal": {"interval": [["2023-01-01T00:00:00Z", None]]}},
                  "links": [{"rel": "item", "href": f"./{i['id']}.json"} for i in items]}
    (folder / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
    (folder / "scenes/collection.json").write_text(json.dumps(collection), encoding="utf-8")
    for item in items:
        (folder / "scenes" / f"{item['id']}.json").write_text(json.dumps(copy.deepcopy(item)), encoding="utf-8")
    return folder / "catalog.json"


def test_schedule_polls_url_feeds_and_the_asset_ingests_them(home: Path, write_contract, pgstac_api: str) -> None:
    import dagster as dg

    from orchestration.feed_assets import FEED_ASSETS, asset_key
    from orchestration.stac_schedule import stac_url_poll

    assert isinstance(stac_url_poll(dg.build_schedule_context()), dg.SkipReason)  # no URL feed yet
    api_contract(write_contract, pgstac_api, {"limit": 5})
    requests = stac_url_poll(dg.build_schedule_context())
    assert [r.asset_selection for r in requests] == [[asset_key(STAC_ITEMS)]]
    stac_asset = next(a for a in FEED_ASSETS if a.key == asset_key(STAC_ITEMS))
    assert dg.materialize([stac_asset]).success
    assert delta_io.read_table(STAC_ITEMS).num_rows == 9
