"""Ingest rules: decide per delivered row whether it reaches silver or quarantine, and say why.

Each rule has an id (used in quarantine.rule_id, asset checks and the quality catalog) and a reason that names
the row's value. The first failing rule of a row wins. All rules are vectorised over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from lake import domain

RULES = {
    "FIELD_CAST": "a mapped field's value cannot be converted to the canonical type or is not in the contract's map",
    "FIELD_TOO_LONG": "a text value is longer than its canonical column's maximum (TableSpec.text_limits)",
    "SHAPEFILE_PARTIAL": "a Shapefile record lacks its shape or its .dbf record (parts disagree; contract "
                         "`on_partial_shapefile: quarantine`)",
    "REQUIRED_MISSING": "a required canonical field (primary key, district, land class) is empty",
    "GEOM_MISSING": "the feature has no geometry, or an empty one",
    "GEOM_TYPE": "the geometry type does not fit the table (e.g. a point in a polygon table)",
    "GEOM_INVALID": "the geometry is not valid (self-intersection, bad ring, ...)",
    "GEOM_OUTSIDE_REGION": "the geometry lies outside the region's extent",
    "LAND_CLASS_UNKNOWN": "the land-class code is not in the dictionary (GB/T 21010-2017 三调 classes)",
    "DISTRICT_UNKNOWN": "the district code is not one of the region's districts",
    "DUPLICATE_KEY": "the primary key occurs more than once in the delivery (every occurrence is quarantined)",
}


@dataclass
class Verdicts:
    rule_id: np.ndarray  # object array: rule id or None (row passes)
    reason: np.ndarray

    @property
    def passed(self) -> np.ndarray:
        return np.equal(self.rule_id, None)

    def fail(self, mask: np.ndarray, rule: str, reasons: np.ndarray | str) -> None:
        """Record `rule` on rows in `mask` that have not failed an earlier rule."""
        target = mask & self.passed
        if not target.any():
            return
        self.rule_id[target] = rule
        self.reason[target] = reasons[target] if isinstance(reasons, np.ndarray) else reasons


def new_verdicts(n: int) -> Verdicts:
    return Verdicts(np.full(n, None, dtype=object), np.full(n, None, dtype=object))


def check_geometry(verdicts: Verdicts, source_geoms: np.ndarray, allowed_types: tuple[str, ...],
                   repair: bool = False) -> np.ndarray:
    """Missing, wrongly typed and invalid geometries, checked in the delivered CRS.

    With `repair` (a contract setting), invalid polygons are repaired with GEOS make_valid (structure method,
    polygonal parts kept) instead of quarantined; returns the mask of repaired rows so the batch can log them.
    """
    missing = shapely.is_missing(source_geoms) | shapely.is_empty(source_geoms)
    verdicts.fail(missing, "GEOM_MISSING", "no geometry (null or empty)")
    type_ids = shapely.get_type_id(source_geoms)
    names = np.array(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString",
                      "MultiPolygon", "GeometryCollection"], dtype=object)
    kinds = np.where(type_ids >= 0, names[np.clip(type_ids, 0, 7)], "None")
    wrong = ~missing & ~np.isin(kinds, allowed_types)
    if wrong.any():
        reasons = np.full(len(source_geoms), None, dtype=object)
        reasons[wrong] = [f"geometry is {k}; this table takes {'/'.join(allowed_types)}" for k in kinds[wrong]]
        verdicts.fail(wrong, "GEOM_TYPE", reasons)
    present = ~missing & ~wrong
    invalid = present & ~shapely.is_valid(source_geoms)
    repaired = np.zeros(len(source_geoms), dtype=bool)
    if repair and invalid.any():
        fixed = _polygonal(shapely.make_valid(source_geoms[invalid], method="structure", keep_collapsed=False))
        ok = ~shapely.is_empty(fixed) & shapely.is_valid(fixed)
        idx = np.flatnonzero(invalid)[ok]
        source_geoms[idx] = fixed[ok]
        repaired[idx] = True
        invalid[idx] = False
    if invalid.any():
        reasons = np.full(len(source_geoms), None, dtype=object)
        reasons[invalid] = [f"invalid geometry: {r}" for r in shapely.is_valid_reason(source_geoms[invalid])]
        verdicts.fail(invalid, "GEOM_INVALID", reasons)
    return repaired


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygonal parts of repaired geometries (make_valid may add collapsed lines)."""
    parts, index = shapely.get_parts(geoms, return_index=True)
    polygonal = np.isin(shapely.get_type_id(parts), (3, 6))
    out = np.array([shapely.Polygon()] * len(geoms), dtype=object)
    for i in np.unique(index[polygonal]):
        out[i] = shapely.union_all(parts[(index == i) & polygonal])
    return out


def check_region(verdicts: Verdicts, bounds: np.ndarray, mode: str = "within") -> None:
    """Geometries (their CGCS2000 lon/lat bounds, NaN where missing) must lie in the region's extent: wholly
    (`within`), partly (`intersects`, e.g. satellite scenes), or anywhere (`off`, for reference data from elsewhere)."""
    if mode == "off":
        return
    xmin, ymin, xmax, ymax = domain.REGION_BBOX
    with np.errstate(invalid="ignore"):
        if mode == "within":
            inside = (bounds[:, 0] >= xmin) & (bounds[:, 1] >= ymin) & (bounds[:, 2] <= xmax) & (bounds[:, 3] <= ymax)
        else:
            inside = (bounds[:, 2] >= xmin) & (bounds[:, 3] >= ymin) & (bounds[:, 0] <= xmax) & (bounds[:, 1] <= ymax)
    outside = ~inside & ~np.isnan(bounds[:, 0])
    if outside.any():
        reasons = np.full(len(bounds), None, dtype=object)
        reasons[outside] = [f"outside the region's extent {domain.REGION_BBOX}: bbox "
                            f"({b[0]:.4f}, {b[1]:.4f}, {b[2]:.4f}, {b[3]:.4f})" for b in bounds[outside]]
        verdicts.fail(outside, "GEOM_OUTSIDE_REGION", reasons)


def check_lengths(verdicts: Verdicts, columns: dict[str, pa.Array], limits: dict[str, int],
                  source_fields: dict[str, str]) -> None:
    """Text longer than its column's maximum: a 10 MB "hazard type" is a broken delivery, not a hazard type."""
    for name, limit in limits.items():
        lengths = pc.fill_null(pc.utf8_length(columns[name]), 0).to_numpy(zero_copy_only=False)
        too_long = lengths > limit
        if too_long.any():
            field = f" (field {source_fields[name]})" if name in source_fields else ""
            reasons = np.full(len(lengths), None, dtype=object)
            reasons[too_long] = [f"{name}{field} is {n} characters long; at most {limit}" for n in lengths[too_long]]
            verdicts.fail(too_long, "FIELD_TOO_LONG", reasons)


def check_required(verdicts: Verdicts, columns: dict[str, pa.Array], required: tuple[str, ...]) -> None:
    for name in required:
        missing = pc.is_null(columns[name]).to_numpy(zero_copy_only=False)
        verdicts.fail(missing, "REQUIRED_MISSING", f"required field {name} is empty")


def check_dictionary(verdicts: Verdicts, columns: dict[str, pa.Array]) -> None:
    """Land-class codes must be in the dictionary; district codes must be the region's."""
    checks = (("land_class_code", tuple(domain.land_classes()), "LAND_CLASS_UNKNOWN", "land-class code"),
              ("district_code", domain.district_codes(), "DISTRICT_UNKNOWN", "district code"))
    for column, allowed, rule, label in checks:
        if column not in columns:
            continue
        values = columns[column]
        unknown = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, pa.array(allowed)))).to_numpy(
            zero_copy_only=False)
        if unknown.any():
            reasons = np.full(len(unknown), None, dtype=object)
            reasons[unknown] = [f"{label} {v!r} is not in the dictionary"
                                for v in values.filter(pa.array(unknown)).to_pylist()]
            verdicts.fail(unknown, rule, reasons)


def check_unique_key(verdicts: Verdicts, columns: dict[str, pa.Array], key: tuple[str, ...]) -> None:
    """Every occurrence of a duplicated key is quarantined: the delivery does not say which one is right."""
    table = pa.table({k: columns[k] for k in key})
    counts = table.group_by(list(key)).aggregate([([], "count_all")])
    dup_keys = counts.filter(pc.greater(counts.column("count_all"), 1))
    if dup_keys.num_rows == 0:
        return
    marked = table.append_column("_i", pa.array(np.arange(table.num_rows))).join(
        dup_keys, keys=list(key), join_type="inner")
    rows = marked.column("_i").to_numpy()
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[rows] = True
    reasons = np.full(table.num_rows, None, dtype=object)
    for i in rows:
        reasons[i] = "duplicate key " + ", ".join(f"{k}={columns[k][i].as_py()!r}" for k in key)
    verdicts.fail(mask, "DUPLICATE_KEY", reasons)
