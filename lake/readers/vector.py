"""Survey vector formats: GeoPackage, Shapefile, FileGDB through GDAL (pyogrio); GeoJSON parsed here.

GeoJSON is parsed by us because GDAL silently assumes WGS84 for a file without CRS information (we must reject
it unless the contract declares one) and does not read a bare array of Features.
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


def read_vector_delivery(source: str, contract: FeedContract) -> RawBatch:
    return read_vector(Path(source), contract.format_of(source), contract.layer, contract.encoding)


def read_vector(path: Path, fmt: str, layer: str | None = None, encoding: str | None = None) -> RawBatch:
    """Read one delivered vector file; raise FeedReadError naming the file and the reason."""
    if not path.exists():
        raise FeedReadError(str(path), "file not found")
    if fmt == "geojson":
        return _read_geojson(path)
    if fmt == "shapefile":
        encoding = _check_shapefile(path, encoding)
    return _read_ogr(path, layer, encoding)


def _check_shapefile(path: Path, encoding: str | None) -> str | None:
    """A shapefile needs its .shx, .dbf and .prj; the .cpg, when delivered, names the .dbf encoding."""
    for part in (".shx", ".dbf", ".prj"):
        if not _sidecar(path, part):
            raise FeedReadError(str(path), f"missing {part}: deliver all parts of the shapefile "
                                           "(.shp, .shx, .dbf, .prj and ideally .cpg)")
    cpg = _sidecar(path, ".cpg")
    if cpg:
        return cpg.read_text(encoding="ascii", errors="replace").strip() or encoding
    return encoding or "UTF-8"


def _sidecar(path: Path, suffix: str) -> Path | None:
    for candidate in path.parent.glob(path.stem + ".*"):
        if candidate.suffix.lower() == suffix:
            return candidate
    return None


def _read_ogr(path: Path, layer: str | None, encoding: str | None) -> RawBatch:
    try:
        layers = [name for name, _ in pyogrio.list_layers(path)]
        if layer is not None and layer not in layers:
            raise FeedReadError(str(path), f"no layer {layer!r}; layers: {', '.join(layers)}")
        chosen = layer or layers[0]
        meta, table = pyogrio.read_arrow(path, layer=chosen, encoding=encoding)
        table.validate(full=True)  # GDAL passes undecodable text through as invalid UTF-8
    except FeedReadError:
        raise
    except (UnicodeDecodeError, pa.ArrowInvalid) as exc:
        raise FeedReadError(str(path), f"text fields are not valid {encoding or 'UTF-8'} ({exc}); "
                                       "declare the right `encoding:` (often GBK) in the feed contract "
                                       "or deliver a .cpg") from exc
    except Exception as exc:  # GDAL raises several types for unreadable files
        raise FeedReadError(str(path), f"not readable as {path.suffix or 'vector data'}: {exc}") from exc
    geometry_columns = [f.name for f in table.schema if (f.metadata or {}).get(b"ARROW:extension:name") == b"geoarrow.wkb"]
    if geometry_columns:
        geometry = table.column(geometry_columns[0]).to_numpy(zero_copy_only=False).astype(object)
    else:
        geometry = np.full(table.num_rows, None, dtype=object)
    attributes = table.drop_columns(geometry_columns)
    return RawBatch(path, chosen, attributes, geometry, meta.get("crs"))


def _read_geojson(path: Path) -> RawBatch:
    try:
        document = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedReadError(str(path), f"invalid JSON: {exc}") from exc
    features, crs = _features_of(path, document)
    geometry_json = [json.dumps(f.get("geometry")) if isinstance(f, dict) and f.get("geometry") else None
                     for f in features]
    try:
        geoms = shapely.from_geojson(np.array(geometry_json, dtype=object), on_invalid="ignore")
    except shapely.errors.GEOSException as exc:
        raise FeedReadError(str(path), f"unreadable geometry: {exc}") from exc
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
        raise FeedReadError(str(path), "not GeoJSON: expected a FeatureCollection, a Feature or an array of Features")
    if not isinstance(features, list):
        raise FeedReadError(str(path), "`features` is not an array")
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
