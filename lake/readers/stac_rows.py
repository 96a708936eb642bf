"""STAC objects to a RawBatch: one row per item (flattened fields + full JSON), its assets as child rows.

The attributes (bronze keeps them all) hold the whole item: top-level fields, `properties`, `links`, `assets` and
`bbox` as JSON text, the geometry as WKB; a few properties are also flattened for the contract's field rules.

Every item is validated offline (lake.stac_schemas); a failing one keeps its row with a row problem, so the ingest
quarantines it with the schema error while the good items land. Collections and catalogs met on the way are
validated too: an invalid one becomes a quarantined row of its own (its id, href and error) and its items are
still read, each judged on its own schema (the item table does not depend on the collection's document).
Links that cannot be read become quarantined rows naming the href. Items of a stac_version without a local core
schema (0.x) are migrated with pystac (links dropped first, so migration never fetches anything) and the migrated
object is validated and flattened; the delivered JSON stays in bronze. Catalogs and collections of such a
version are walked without a schema check (there is nothing local to check them against).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pystac
import shapely
import shapely.geometry
from pystac.utils import make_absolute_href, str_to_datetime

from lake.readers.raw_batch import RawBatch
from lake.stac_schemas import validate_stac

STAC_SCHEMA = "STAC_SCHEMA"  # the object fails its STAC JSON schema (core or a locally available extension)
STAC_UNREADABLE = "STAC_UNREADABLE"  # a linked STAC document cannot be read or is not JSON

TS = pa.timestamp("us", tz="UTC")
ITEM_COLUMNS: dict[str, pa.DataType] = {
    "id": pa.string(), "collection": pa.string(), "stac_type": pa.string(), "stac_version": pa.string(),
    "stac_extensions": pa.string(), "unchecked_extensions": pa.string(), "datetime": TS, "start_datetime": TS,
    "end_datetime": TS, "eo:cloud_cover": pa.float64(), "gsd": pa.float64(), "platform": pa.string(),
    "constellation": pa.string(), "instruments": pa.string(), "epsg": pa.int32(), "properties": pa.string(),
    "links": pa.string(), "assets": pa.string(), "bbox": pa.string(), "self_href": pa.string(),
}
ASSET_COLUMNS: dict[str, pa.DataType] = {
    "collection": pa.string(), "item_id": pa.string(), "asset_key": pa.string(), "href": pa.string(),
    "media_type": pa.string(), "roles": pa.string(), "title": pa.string(), "size_bytes": pa.int64(),
    "_row_hash": pa.string(), "_parent_row": pa.int64(),
}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _text(value: Any) -> str | None:
    """Strings as they are; anything else (a schema error the check reports) as JSON, so the batch still builds."""
    return value if isinstance(value, str) or value is None else _json(value)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _epsg(props: dict[str, Any]) -> int | None:
    """proj:epsg (projection ext. 1.x) or proj:code 'EPSG:n' (2.x)."""
    if isinstance(props.get("proj:epsg"), int):
        return props["proj:epsg"]
    code = props.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:") and code[5:].isdigit():
        return int(code[5:])
    return None


def _timestamp(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return str_to_datetime(str(value)).astimezone(UTC)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"properties.{name} {value!r} is not an RFC 3339 date-time") from exc


def _self_href(obj: dict[str, Any]) -> str | None:
    links = obj.get("links")
    return next((_text(lk.get("href")) for lk in links if isinstance(lk, dict) and lk.get("rel") == "self"),
                None) if isinstance(links, list) else None


def _migrated(obj: dict[str, Any]) -> dict[str, Any]:
    """A 0.x item as pystac's migration makes it; links are set aside during migration (so nothing is fetched)
    and put back as delivered."""
    item = pystac.Item.from_dict({**obj, "links": []}, migrate=True, preserve_dict=False)
    return {**item.to_dict(include_self_link=False, transform_hrefs=False), "links": obj.get("links", [])}


@dataclass
class StacRows:
    """Rows collected while reading one delivery, in delivery order."""

    items: list[dict[str, Any]] = field(default_factory=list)
    geometry: list[bytes | None] = field(default_factory=list)
    problems: list[tuple[str, str] | None] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    assets: list[dict[str, Any]] = field(default_factory=list)
    passed_before: frozenset[str] = frozenset()  # content hashes of items already in silver (valid when they landed)

    def add_item(self, obj: dict[str, Any], href: str | None, collection: str | None = None) -> None:
        """An item as delivered at `href` (None when it came from an API), in `collection` when its parent is one.

        An item whose content hash is in `passed_before` is not schema-checked again: a re-delivery where a few
        items changed validates only those."""
        where = href or _self_href(obj) or "the response"
        row_hash = content_hash([obj, collection])
        fresh = row_hash not in self.passed_before
        check = validate_stac(obj, check_schemas=fresh)
        flat = obj
        if not check.core_available:
            try:
                flat = _migrated(obj)
            except Exception as exc:  # noqa: BLE001 - pystac raises many kinds on malformed legacy input
                self.add_invalid(obj, where, "Feature", STAC_SCHEMA, f"stac_version {check.version!r} has no local "
                                                                     f"schema and pystac cannot migrate it: {exc}")
                return
            check = validate_stac(flat, check_schemas=fresh)
        props = flat.get("properties") if isinstance(flat.get("properties"), dict) else {}
        row = self._base_row(obj, href, "Feature")
        row |= {"id": _text(obj.get("id")), "collection": _text(obj.get("collection")) or collection,
                "unchecked_extensions": _json(list(check.unchecked_extensions) or None),
                "eo:cloud_cover": _number(props.get("eo:cloud_cover")), "gsd": _number(props.get("gsd")),
                "platform": _text(props.get("platform")), "constellation": _text(props.get("constellation")),
                "instruments": _json(props.get("instruments")), "epsg": _epsg(props), "properties": _json(props)}
        problem = (STAC_SCHEMA, f"{where}: {check.reason}") if check.errors else None
        try:
            for name in ("datetime", "start_datetime", "end_datetime"):
                row[name] = _timestamp(props.get(name), name)
            geometry = shapely.geometry.shape(obj["geometry"]).wkb if obj.get("geometry") else None
        except (ValueError, TypeError, KeyError, AttributeError, shapely.errors.GEOSException) as exc:
            geometry, problem = None, problem or (STAC_SCHEMA, f"{where}: {exc}")
        self._append(row, geometry, problem, row_hash)
        self._add_assets(obj, href or row["self_href"], row)

    def add_invalid(self, obj: Any, href: str, kind: str, rule: str, reason: str) -> None:
        """A collection/catalog failing its schema, or a link that cannot be read: a row only for quarantine."""
        row = self._base_row(obj if isinstance(obj, dict) else {}, href, kind)
        self._append(row, None, (rule, f"{href}: {reason}"), content_hash([obj, href]))

    def _base_row(self, obj: dict[str, Any], href: str | None, kind: str) -> dict[str, Any]:
        row: dict[str, Any] = dict.fromkeys(ITEM_COLUMNS)
        row |= {"stac_type": _text(obj.get("type")) or kind, "stac_version": _text(obj.get("stac_version")),
                "stac_extensions": _json(obj.get("stac_extensions")), "links": _json(obj.get("links")),
                "assets": _json(obj.get("assets")), "bbox": _json(obj.get("bbox")),
                "self_href": href or _self_href(obj)}
        return row

    def _append(self, row: dict[str, Any], geometry: bytes | None, problem: tuple[str, str] | None,
                row_hash: str) -> None:
        self.items.append(row)
        self.geometry.append(geometry)
        self.problems.append(problem)
        self.hashes.append(row_hash)

    def _add_assets(self, obj: dict[str, Any], base_href: str | None, row: dict[str, Any]) -> None:
        assets = obj.get("assets")
        for key, asset in (assets.items() if isinstance(assets, dict) else ()):
            if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
                continue  # the schema check has already failed the item
            href = make_absolute_href(asset["href"], base_href) if base_href else asset["href"]
            size = asset.get("file:size")
            self.assets.append({
                "collection": row["collection"], "item_id": row["id"], "asset_key": key, "href": href,
                "media_type": _text(asset.get("type")), "roles": _json(asset.get("roles")),
                "title": _text(asset.get("title")),
                "size_bytes": size if isinstance(size, int) and not isinstance(size, bool) else None,
                "_row_hash": self.hashes[-1], "_parent_row": len(self.items)})

    def to_batch(self, source: str, layer: str, sha256: str | None = None,
                 uncollected: str | None = None) -> RawBatch:
        """The batch; `sha256` for sources that are not local files (the ingest hashes those itself).

        Assets do not pass through the contract's field rules, so the collection the contract gives items outside
        any collection (`uncollected`, its `default`) is set on their assets here, keeping both tables' keys equal.
        """
        attributes = pa.table({name: pa.array([r[name] for r in self.items], typ)
                               for name, typ in ITEM_COLUMNS.items()})
        assets = pa.table({name: pa.array([a[name] for a in self.assets], typ)
                           for name, typ in ASSET_COLUMNS.items()})
        if uncollected is not None:
            assets = assets.set_column(0, "collection", pc.fill_null(assets.column("collection"), uncollected))
        problems = np.empty(len(self.problems), dtype=object)
        for i, problem in enumerate(self.problems):  # element-wise: numpy would unpack the tuples
            problems[i] = problem
        return RawBatch(source, layer, attributes, np.array(self.geometry, dtype=object), "EPSG:4326",
                        sha256=sha256, row_hashes=np.array(self.hashes, dtype=object),
                        children={"stac_assets": assets}, row_problems=problems)
