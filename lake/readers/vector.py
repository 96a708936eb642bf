"""Survey vector formats: GeoPackage and FileGDB through GDAL (pyogrio); GeoJSON parsed here (Shapefiles: shapefile.py).

GeoJSON is parsed by us because GDAL silently assumes WGS84 for a file without CRS information (we must reject
it unless the contract declares one) and does not read a bare array of Features.

Nothing is read short: GDAL returns the rows it could read from a truncated FileGDB table without an error, so the
rows read are checked against the feature count the layer declares (pyogrio's `read_info`). A file with several
layers needs the contract to name one, and a file with no records fails (an empty delivery must not pass for a
source that has nothing left: a failed batch leaves the lake as it was).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyogrio
import shapely

from lake.errors import FeedReadError
from lake.readers.raw_batch import RawBatch

if TYPE_CHECKING:
    from lake.contracts import FeedContract

_FORMAT_NAMES = {"gpkg": "GeoPackage", "filegdb": "FileGDB"}
REDELIVER = "re-deliver the whole file"


def read_vector_delivery(source: str, contract: FeedContract) -> RawBatch:
    path = Path(source)
    if not path.exists():
        raise FeedReadError(path, "file not found")
    fmt = contract.format_of(source)
    batch = _read_geojson(path) if fmt == "geojson" else _read_ogr(path, fmt, contract)
    return require_records(batch)


def require_records(batch: RawBatch) -> RawBatch:
    """A delivery without records fails: ingesting it as zero rows would look like success and add nothing."""
    if batch.num_rows == 0:
        raise FeedReadError(batch.source, f"no records in layer {batch.layer!r}: nothing to ingest; deliver the file "
                                          "with its features (rows already in the lake stay as they are)")
    return batch


def split_geometry(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """GDAL's Arrow table → (attribute columns, WKB per row or None)."""
    geometry_columns = [f.name for f in table.schema
                        if (f.metadata or {}).get(b"ARROW:extension:name") == b"geoarrow.wkb"]
    if geometry_columns:
        geometry = table.column(geometry_columns[0]).to_numpy(zero_copy_only=False).astype(object)
    else:
        geometry = np.full(table.num_rows, None, dtype=object)
    return table.drop_columns(geometry_columns), geometry


def _read_ogr(path: Path, fmt: str, contract: FeedContract) -> RawBatch:
    if fmt == "gpkg":
        _check_sqlite_length(path)
    name = _FORMAT_NAMES.get(fmt, fmt)
    try:
        layer = _choose_layer(path, [str(n) for n, _ in pyogrio.list_layers(path)], contract)
        declared = pyogrio.read_info(path, layer=layer)["features"]
        meta, table = pyogrio.read_arrow(path, layer=layer)
        table.validate(full=True)  # GDAL passes invalid UTF-8 through
    except FeedReadError:
        raise
    except pa.ArrowInvalid as exc:
        raise FeedReadError(path, f"text fields are not valid UTF-8, as {name} requires ({exc}); re-export the "
                                  "file from its source") from exc
    except Exception as exc:  # GDAL raises several types for unreadable files
        raise FeedReadError(path, f"not readable as {name}: {exc}; the file may be truncated or damaged: "
                                  f"{REDELIVER}") from exc
    if declared >= 0 and table.num_rows != declared:
        raise FeedReadError(path, f"layer {layer!r} declares {declared} features but only {table.num_rows} can be "
                                  f"read: the file is truncated or damaged; {REDELIVER}")
    attributes, geometry = split_geometry(table)
    return RawBatch(path, layer, attributes, geometry, meta.get("crs"))


def _choose_layer(path: Path, layers: list[str], contract: FeedContract) -> str:
    """The contract's layer; without one, the file's only layer. Never a guess between several."""
    if contract.layer is not None:
        if contract.layer not in layers:
            raise FeedReadError(path, f"no layer {contract.layer!r}; layers: {', '.join(layers)}")
        return contract.layer
    if not layers:
        raise FeedReadError(path, f"no layers: nothing to ingest; {REDELIVER} with its features")
    if len(layers) > 1:
        raise FeedReadError(path, f"{len(layers)} layers ({', '.join(layers)}) and feed contract {contract.feed} "
                                  "names none: add `layer:` to the contract")
    return layers[0]


def _check_sqlite_length(path: Path) -> None:
    """A GeoPackage cut short fails with its length named. GDAL only reports a failed SQL statement (or reads what
    is left), so the SQLite header's own page count (valid when its version stamp matches) is compared here."""
    with path.open("rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00") or header[24:28] != header[92:96]:
        return  # not SQLite, or a header whose page count is stale: GDAL says what it finds
    page_size = int.from_bytes(header[16:18], "big")
    expected = (65536 if page_size == 1 else page_size) * int.from_bytes(header[28:32], "big")
    actual = path.stat().st_size
    if actual < expected:
        raise FeedReadError(path, f"truncated GeoPackage: its SQLite header counts {expected} bytes but the file has "
                                  f"{actual}; {REDELIVER}")


def _read_geojson(path: Path) -> RawBatch:
    try:
        document = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise FeedReadError(path, f"invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}): the file is "
                                  f"cut off or damaged; {REDELIVER}") from exc
    except UnicodeDecodeError as exc:
        raise FeedReadError(path, f"invalid JSON: not UTF-8 text ({exc}); GeoJSON is UTF-8 (RFC 7946): re-export "
                                  "it as UTF-8") from exc
    features, crs = _features_of(path, document)
    geometry_json = [json.dumps(f.get("geometry")) if isinstance(f, dict) and f.get("geometry") else None
                     for f in features]
    try:
        geoms = shapely.from_geojson(np.array(geometry_json, dtype=object), on_invalid="ignore")
    except shapely.errors.GEOSException as exc:
        raise FeedReadError(path, f"unreadable geometry: {exc}") from exc
    wkb = shapely.to_wkb(geoms, output_dimension=2)
    props = [f.get("properties") or {} if isinstance(f, dict) else {} for f in features]
    return RawBatch(path, path.stem, _properties_table(props), np.asarray(wkb, dtype=object), crs)


def _features_of(path: Path, document: object) -> tuple[list, str | None]:
    """Accept a FeatureCollection, a bare array of Features, or one Feature; read a legacy `crs` member."""
    crs = None
    if isinstance(document, dict) and document.get("type") == "FeatureCollection":
        features = document.get("features")
        crs = _legacy_crs(document.get("crs"))
    elif isinstance(document, list):
        features = document
    elif isinstance(document, dict) and document.get("type") == "Feature":
        features = [document]
    else:
        raise FeedReadError(path, "not GeoJSON: expected a FeatureCollection, a Feature or an array of Features")
    if not isinstance(features, list):
        raise FeedReadError(path, "`features` is not an array")
    return features, crs


def _legacy_crs(member: object) -> str | None:
    """The 2008 GeoJSON `crs` member ({"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4490"}})."""
    if isinstance(member, dict) and isinstance(member.get("properties"), dict):
        name = member["properties"].get("name")
        return str(name) if name else None
    return None


def _properties_table(props: list[dict]) -> pa.Table:
    """Columns in first-seen order; nested values kept as JSON text so nothing delivered is lost."""
    names: dict[str, None] = {}
    for p in props:
        names.update(dict.fromkeys(p))
    columns = {}
    for name in names:
        values = [p.get(name) for p in props]
        values = [json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for v in values]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(columns) if columns else pa.table({"__empty__": pa.nulls(len(props))}).drop_columns(["__empty__"])
