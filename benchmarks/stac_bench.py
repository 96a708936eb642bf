"""STAC benchmark: items/s into the lake from a local STAC API (stac-fastapi-pgstac) and from a static catalog.

End to end = fetch (HTTP pages, or files), validate every item offline against the STAC schemas, flatten, write
bronze + silver items + silver assets + quarantine and the ingest log. The API run pages through a real
stac-fastapi-pgstac server on a throwaway PostgreSQL (as in tests/test_stac.py); loading pgstac is timed apart.
Then an unchanged poll (a no-op) and a poll where 1% of the items changed (only those are rewritten).

    python -m benchmarks.stac_bench [--items 10000] [--page 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from lake.demo_region import region_outline

CONTRACT = """
feed: {feed}
table: stac_items
format: {fmt}
{source}
prune_missing: false
options: {options}
fields:
  item_id: id
  collection: collection
  datetime: datetime
  cloud_cover: eo:cloud_cover
  gsd: gsd
  platform: platform
  epsg: epsg
  stac_version: stac_version
  properties: properties
  links: links
  self_href: self_href
"""
COLLECTION = "bench-optical"


def synthetic_items(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n scene items of about 2 KB (3 assets) with footprints of 0.2° inside the region's extent."""
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = region_outline().bounds
    x, y = rng.uniform(xmin, xmax - 0.2, n), rng.uniform(ymin, ymax - 0.2, n)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    items = []
    for i in range(n):
        box = [round(float(v), 5) for v in (x[i], y[i], x[i] + 0.2, y[i] + 0.2)]
        ring = [[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]], [box[0], box[1]]]
        when = start + timedelta(minutes=int(rng.integers(0, 525_600)))
        items.append({
            "type": "Feature", "stac_version": "1.1.0", "id": f"BENCH_{i:06d}", "collection": COLLECTION,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
            "geometry": {"type": "Polygon", "coordinates": [ring]}, "bbox": box,
            "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "platform": "bench-1", "gsd": 10.0,
                           "eo:cloud_cover": round(float(rng.uniform(0, 100)), 2), "proj:epsg": 4490},
            "links": [{"rel": "collection", "href": "./collection.json", "type": "application/json"}],
            "assets": {k: {"href": f"https://example.invalid/{i}/{k}.tif", "roles": [r],
                           "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
                       for k, r in (("visual", "visual"), ("B04", "data"), ("B08", "data"))},
        })
    return items


def collection_doc(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "Collection", "stac_version": "1.1.0", "id": COLLECTION, "description": "benchmark scenes",
            "license": "CC-BY-4.0", "extent": {"spatial": {"bbox": [list(region_outline().bounds)]},
                                               "temporal": {"interval": [["2023-01-01T00:00:00Z", None]]}},
            "links": [{"rel": "item", "href": f"./{i['id']}.json"} for i in items]}


def write_static_catalog(folder: Path, items: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True)
    (folder / "catalog.json").write_text(json.dumps({
        "type": "Catalog", "stac_version": "1.1.0", "id": "bench", "description": "benchmark",
        "links": [{"rel": "child", "href": f"./{COLLECTION}/collection.json"}]}))
    (folder / COLLECTION).mkdir()
    (folder / COLLECTION / "collection.json").write_text(json.dumps(collection_doc(items)))
    for item in items:
        (folder / COLLECTION / f"{item['id']}.json").write_text(json.dumps(item))


def _use_home(home: Path, feed: str, fmt: str, source: str, options: dict[str, Any]) -> None:
    (home / "feeds").mkdir(parents=True, exist_ok=True)
    (home / "feeds" / f"{feed}.yaml").write_text(textwrap.dedent(CONTRACT).format(
        feed=feed, fmt=fmt, source=source, options=json.dumps(options)))
    os.environ["ONEMAP_HOME"] = str(home)
    os.environ.pop("ONEMAP_LAKE", None)


def _timed_ingest(source: str | Path, feed: str) -> tuple[float, Any]:
    from lake.contracts import get_contract
    from lake.ingest import ingest_source

    start = time.perf_counter()
    result = ingest_source(source, get_contract(feed))
    return time.perf_counter() - start, result


def bench_static(items: list[dict[str, Any]], tmp: Path) -> dict[str, float]:
    home = tmp / "static"
    write_static_catalog(home / "landing" / "bench", items)
    _use_home(home, "bench_static", "stac_catalog", "landing: bench", {})
    seconds, result = _timed_ingest(home / "landing" / "bench", "bench_static")
    assert result.rows_silver == len(items), result
    return {"items": result.rows_silver, "seconds": seconds}


def bench_api(items: list[dict[str, Any]], tmp: Path, page: int) -> dict[str, float]:
    from lake import delta_io
    from lake.registry import STAC_ITEMS
    from tests.stac_api_server import PgstacServer

    with PgstacServer() as server:
        start = time.perf_counter()
        server.load([collection_doc([])], items)
        load_s = time.perf_counter() - start
        _use_home(tmp / "api", "bench_api", "stac_api", f"url: {server.url}", {"limit": page})
        seconds, result = _timed_ingest(server.url, "bench_api")
        assert result.rows_silver == len(items), result
        unchanged_s, again = _timed_ingest(server.url, "bench_api")
        assert again.status == "skipped", again
        changed = [{**i, "properties": {**i["properties"], "eo:cloud_cover": 0.0}} for i in items[:len(items) // 100]]
        server.load([], changed)
        version = delta_io.open_table(STAC_ITEMS).version()
        changed_s, _ = _timed_ingest(server.url, "bench_api")
        rewritten = delta_io.read_table(STAC_ITEMS).filter(pc.field("_batch_id") != result.batch_id).num_rows
        assert delta_io.open_table(STAC_ITEMS).version() == version + 1
    return {"items": result.rows_silver, "seconds": seconds, "pgstac_load_s": load_s, "unchanged_poll_s": unchanged_s,
            "changed_poll_s": changed_s, "changed": len(changed), "rewritten": rewritten}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=1_000, help="API page size (limit)")
    args = parser.parse_args()
    items = synthetic_items(args.items)
    with tempfile.TemporaryDirectory(prefix="onemap-stac-bench-") as tmp:
        static = bench_static(items, Path(tmp))
        api = bench_api(items, Path(tmp), args.page)
    print(f"{'source':<28} {'items':>7} {'seconds':>8} {'items/s':>8}")
    print(f"{'static catalog (files)':<28} {static['items']:>7,} {static['seconds']:>8.2f} "
          f"{static['items'] / static['seconds']:>8,.0f}")
    print(f"{'STAC API (pgstac, page ' + str(args.page) + ')':<28} {api['items']:>7,} {api['seconds']:>8.2f} "
          f"{api['items'] / api['seconds']:>8,.0f}")
    print(f"pgstac load {api['pgstac_load_s']:.2f} s; unchanged poll {api['unchanged_poll_s']:.2f} s (no-op); "
          f"poll with {api['changed']} changed items {api['changed_poll_s']:.2f} s, {api['rewritten']} rows rewritten")


if __name__ == "__main__":
    main()
