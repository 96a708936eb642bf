"""STAC feed readers: a static catalog (format `stac_catalog`) and a STAC API item search (format `stac_api`).

`stac_catalog` source: a catalog/collection/item/ItemCollection JSON file, a folder holding catalog.json or
collection.json, or an http(s) URL; read with pystac's StacIO, walking `child` and `item` links (cycles skipped).
A root that cannot be read fails the batch; a child that cannot be read is quarantined (good items still land).
Contract options: none.

`stac_api` source: the contract's `url` (the API landing page). Contract options:
    collections: [sentinel-2-l2a]     bbox: [105.2, 28.1, 110.2, 32.2]     datetime: 2023-01-01/2023-12-31
    limit: 100          # page size asked of the server
    max_items: 10000    # stop after this many items (default: all)
    method: POST        # or GET
    timeout_s: 30       # per request (connect and read)
    retries: 3          # per request, on connection errors, timeouts and 429/5xx, with backoff
    backoff_s: 0.5
Paging follows the server's `next` links. Range items served without `"datetime": null` (a pgstac bug) get it
back before validation. Any request that still fails after its retries fails the whole batch
(FeedReadError), so a half-read search never reaches the lake. The batch's sha256 is the hash of the items read
(a poll returning the same items is a no-op) and each row carries its item's content hash, so with
`prune_missing: false` only new or changed items are written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac
import requests
from pystac.utils import make_absolute_href
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from urllib3.util.retry import Retry

from lake import delta_io
from lake.errors import FeedReadError
from lake.readers.raw_batch import RawBatch
from lake.readers.stac_rows import STAC_SCHEMA, STAC_UNREADABLE, StacRows, content_hash
from lake.registry import SILVER
from lake.stac_schemas import stac_kind, validate_stac

if TYPE_CHECKING:
    from lake.contracts import FeedContract

_ROOT_NAMES = ("catalog.json", "collection.json")


def _passed_before(contract: FeedContract) -> frozenset[str]:
    """Content hashes of the items in the contract's silver table: each passed validation when it landed."""
    rows = delta_io.read_table(SILVER[contract.table], columns=["_row_hash"])
    return frozenset(h for h in rows.column("_row_hash").to_pylist() if h)


def _uncollected(contract: FeedContract) -> str | None:
    """The collection the contract gives items outside any collection (`collection: {field: …, default: …}`)."""
    rule = contract.fields.get("collection")
    return None if rule is None or rule.default is None else str(rule.default)


def _root_href(source: str) -> str:
    if "://" in source:
        return source
    path = Path(source)
    if path.is_dir():
        root = next((path / n for n in _ROOT_NAMES if (path / n).is_file()), None)
        if root is None:
            raise FeedReadError(source, f"folder has no {' or '.join(_ROOT_NAMES)}; point the contract at the "
                                        f"catalog's root file")
        return root.resolve().as_posix()
    return path.resolve().as_posix()


def _read_json(href: str) -> Any:
    return json.loads(pystac.StacIO.default().read_text(href))


def read_stac_catalog(source: str, contract: FeedContract) -> RawBatch:
    """Every item reachable from the root, in link order; invalid objects kept as rows for quarantine."""
    root_href = _root_href(source)
    try:
        root = _read_json(root_href)
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError; urllib errors are OSErrors
        raise FeedReadError(source, f"cannot read STAC JSON {root_href}: {exc}") from exc
    if not isinstance(root, dict):
        raise FeedReadError(source, f"{root_href} is not a STAC object (top level is {type(root).__name__})")
    rows = StacRows(passed_before=_passed_before(contract))
    if root.get("type") == "FeatureCollection":
        for feature in root.get("features") or []:
            rows.add_item(feature, None)
    else:
        _walk(root, root_href, None, rows, {root_href})
    return rows.to_batch(source, str(root.get("id") or Path(root_href).stem), uncollected=_uncollected(contract))


def _walk(obj: dict[str, Any], href: str, collection: str | None, rows: StacRows, seen: set[str]) -> None:
    kind = stac_kind(obj)
    if kind == "item":
        rows.add_item(obj, href, collection)
        return
    check = validate_stac(obj)
    if check.errors:
        rows.add_invalid(obj, href, kind, STAC_SCHEMA, check.reason)
    if kind == "collection" and isinstance(obj.get("id"), str):
        collection = obj["id"]
    links = obj.get("links") if isinstance(obj.get("links"), list) else []
    for link in links:
        if not isinstance(link, dict) or link.get("rel") not in ("child", "item") or "href" not in link:
            continue
        child_href = make_absolute_href(str(link["href"]), href)
        if child_href in seen:
            continue
        seen.add(child_href)
        try:
            child = _read_json(child_href)
        except (OSError, ValueError) as exc:
            rows.add_invalid(None, child_href, "Link", STAC_UNREADABLE, f"linked from {href}: {exc}")
            continue
        if not isinstance(child, dict):
            rows.add_invalid(None, child_href, "Link", STAC_UNREADABLE, f"linked from {href}: not a JSON object")
            continue
        _walk(child, child_href, collection, rows, seen)


def _api_io(options: dict[str, Any]) -> StacApiIO:
    retry = Retry(total=int(options.get("retries", 3)), backoff_factor=float(options.get("backoff_s", 0.5)),
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None, raise_on_status=True)
    return StacApiIO(max_retries=retry)


def _restore_null_datetime(item: dict[str, Any]) -> dict[str, Any]:
    """pgstac drops `"datetime": null` from range items when it serves them (stac-utils/pgstac#158, #425), which
    makes them schema-invalid; with start and end present, null is the only value the producer can have sent."""
    props = item.get("properties")
    if isinstance(props, dict) and "datetime" not in props and {"start_datetime", "end_datetime"} <= props.keys():
        return {**item, "properties": {**props, "datetime": None}}
    return item


def read_stac_api(source: str, contract: FeedContract) -> RawBatch:
    """All items of one search, read completely before anything is returned."""
    options = contract.options
    try:
        client = Client.open(source, stac_io=_api_io(options), timeout=float(options.get("timeout_s", 30)))
        search = client.search(
            method=options.get("method", "POST"), collections=options.get("collections"),
            bbox=options.get("bbox"), datetime=options.get("datetime"), limit=options.get("limit", 100),
            max_items=options.get("max_items"))
        fetched = [_restore_null_datetime(item) for item in search.items_as_dicts()]
    except (APIError, requests.RequestException, OSError, ValueError, pystac.STACError) as exc:
        raise FeedReadError(source, f"STAC API search failed after retries, nothing written: "
                                    f"{type(exc).__name__}: {exc}") from exc
    digest = hashlib.sha256("\n".join(sorted(content_hash([i, None]) for i in fetched)).encode()).hexdigest()
    from lake.ingest import already_ingested  # noqa: PLC0415 - ingest imports the readers

    rows = StacRows(passed_before=_passed_before(contract))
    if not already_ingested(contract.feed, digest, source):  # an unchanged poll is recognised before any row is built
        for item in fetched:
            rows.add_item(item, None)
    return rows.to_batch(source, "search", sha256=digest, uncollected=_uncollected(contract))
