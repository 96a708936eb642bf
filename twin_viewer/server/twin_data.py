"""What the viewer's JSON endpoints read from the lake: gold as published, silver buildings and districts.

Read-only through delta-rs. Small tables (districts, indicators, conflicts, building attributes) are loaded once per
gold build id (gold) or per Delta version (silver) and kept in memory; whether either moved is checked at most every
couple of seconds, so a request costs a dictionary lookup and a new publish is visible within that interval.
Parcels (up to millions) are never loaded whole: a lookup reads one district partition with a predicate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from lake import delta_io
from lake.domain import REGION_CODE, district_codes, plan_targets
from lake.publish import latest_published
from lake.registry import (BBOX_COLUMNS, BUILDINGS, DISTRICTS, GOLD_CONFLICTS, GOLD_DISTRICT_INDICATORS,
                           GOLD_ONE_MAP_PARCELS, PARCELS, TableSpec)

SEVERITY_ORDER = {"error": 0, "warn": 1}  # gold severities; anything else after them
BUILDING_COLUMNS = [f.name for f in BUILDINGS.columns] + list(BBOX_COLUMNS) + ["_source_uri", "_ingested_at"]


def _centre(row: dict[str, Any]) -> tuple[float, float] | None:
    if row.get("bbox_xmin") is None:
        return None
    return (row["bbox_xmin"] + row["bbox_xmax"]) / 2, (row["bbox_ymin"] + row["bbox_ymax"]) / 2


def _bbox(row: dict[str, Any]) -> list[float] | None:
    return None if row.get("bbox_xmin") is None else [row[c] for c in BBOX_COLUMNS]


def _partition(path: str) -> str | None:
    """The district_code of a Delta data file from its partition folder (`…/district_code=500103/…`)."""
    for part in path.split("/"):
        if part.startswith("district_code="):
            return part.split("=", 1)[1]
    return None


def place(row: dict[str, Any]) -> dict[str, Any]:
    """The row without its bbox columns, with `bbox` [w, s, e, n] and `centre` [lon, lat] for flying to it."""
    out = {k: v for k, v in row.items() if k not in BBOX_COLUMNS and k != "geometry"}
    out["bbox"], centre = _bbox(row), _centre(row)
    out["centre"] = list(centre) if centre else None
    return out


class TwinData:
    """Cached, read-only views of the lake for the viewer (one instance per app)."""

    def __init__(self, recheck_s: float = 2.0) -> None:
        self._recheck_s = recheck_s
        self._stamps: dict[str, tuple[float, Any]] = {}
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    # --- freshness --------------------------------------------------------------------------------------------
    def _stamp(self, name: str, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._stamps.get(name)
            if hit is not None and now - hit[0] < self._recheck_s:
                return hit[1]
        value = compute()
        with self._lock:
            self._stamps[name] = (now, value)
        return value

    def published(self) -> tuple[str, dict[str, int]] | None:
        return self._stamp("published", latest_published)

    def build_id(self) -> str | None:
        published = self.published()
        return published[0] if published else None

    def silver_version(self, spec: TableSpec) -> int | None:
        return self._stamp(spec.key, lambda: (t.version() if (t := delta_io.open_table(spec)) is not None else None))

    def _cached(self, name: str, stamp: Any, load: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = load()
        with self._lock:
            self._cache[name] = (stamp, value)
        return value

    def gold(self, spec: TableSpec, columns: list[str] | None = None) -> pa.Table | None:
        """A gold table at the latest published version (None before the first publish)."""
        published = self.published()
        if published is None or spec.key not in published[1]:
            return None
        return delta_io.read_table(spec, columns=columns, version=published[1][spec.key])

    # --- tables -----------------------------------------------------------------------------------------------
    def buildings(self) -> tuple[pa.Table, dict[str, int]]:
        """Building attributes (no geometry) and an index building_id → row."""
        def load() -> tuple[pa.Table, dict[str, int]]:
            table = delta_io.read_table(BUILDINGS, columns=BUILDING_COLUMNS)
            return table, {bid: i for i, bid in enumerate(table.column("building_id").to_pylist())}
        return self._cached("buildings", self.silver_version(BUILDINGS), load)

    def building(self, building_id: str) -> dict[str, Any] | None:
        table, index = self.buildings()
        row = index.get(building_id)
        if row is None:
            return None
        out = place(table.slice(row, 1).to_pylist()[0])
        out["source"] = (out.pop("_source_uri") or "").rsplit("/", 1)[-1] or None
        out["ingested_at"] = out.pop("_ingested_at")
        return out

    def districts(self) -> list[dict[str, Any]]:
        """Districts with name, area, bbox and a centre inside the outline (for labels and flying)."""
        def load() -> list[dict[str, Any]]:
            table = delta_io.read_table(DISTRICTS, columns=["district_code", "name", "area_m2", "geometry",
                                                            *BBOX_COLUMNS])
            inside = shapely.point_on_surface(shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)))
            rows = []
            for row, point in zip(table.drop_columns(["geometry"]).to_pylist(), inside, strict=True):
                rows.append({"code": row["district_code"], "name": row["name"],
                             "area_km2": round(row["area_m2"] / 1e6, 2) if row["area_m2"] else None,
                             "bbox": _bbox(row), "centre": [float(shapely.get_x(point)), float(shapely.get_y(point))]})
            return sorted(rows, key=lambda r: r["code"])
        return self._cached("districts", self.silver_version(DISTRICTS), load)

    def region_bbox(self) -> list[float] | None:
        boxes = [d["bbox"] for d in self.districts() if d["bbox"]]
        if not boxes:
            return None
        return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]

    def indicators(self) -> dict[str, Any] | None:
        """Each district (and the region) against the 2025 targets, with the indicators' names and units."""
        def load() -> dict[str, Any] | None:
            table = self.gold(GOLD_DISTRICT_INDICATORS)
            if table is None:
                return None
            present = [t for t in plan_targets() if t["indicator_id"] in table.column_names]
            indicators = [{"id": t["indicator_id"], "name_zh": t["name_zh"], "name_en": t["name_en"],
                           "unit": t["unit"], "target_2025": float(t["target_2025"]), "direction": t["direction"],
                           "binding": t["binding"]} for t in present]
            rows = []
            for r in table.to_pylist():
                values = {t["id"]: {"value": r[t["id"]], "target": r[f"{t['id']}_target"],
                                    "status": r[f"{t['id']}_status"]} for t in indicators}
                rows.append({"code": r["district_code"], "name": r["district_name"],
                             "region": r["district_code"] == REGION_CODE, "survey_year": r["survey_year"],
                             "values": values})
            rows.sort(key=lambda r: (not r["region"], r["code"]))
            return {"build_id": self.build_id(), "indicators": indicators, "rows": rows}
        return self._cached("indicators", self.build_id(), load)

    def conflicts(self) -> list[dict[str, Any]]:
        """Every published conflict, most severe and largest first, without geometry."""
        def load() -> list[dict[str, Any]]:
            columns = [c for c in GOLD_CONFLICTS.schema.names if c != "geometry"]
            table = self.gold(GOLD_CONFLICTS, columns=columns)
            rows = [place(r) for r in (table.to_pylist() if table is not None else [])]
            rows.sort(key=lambda r: (SEVERITY_ORDER.get(r["severity"], 2), -(r["area_m2"] or 0), r["conflict_id"]))
            return rows
        return self._cached("conflicts", self.build_id(), load)

    def parcel(self, parcel_id: str) -> dict[str, Any] | None:
        """The one-map row of a parcel (latest survey year) and its survey rows of every year."""
        district, published = parcel_id[:6], self.published()
        gold_version = published[1].get(GOLD_ONE_MAP_PARCELS.key) if published else None
        gold = self._parcel_rows(GOLD_ONE_MAP_PARCELS, gold_version, parcel_id, district) \
            if gold_version is not None else []
        survey = self._parcel_rows(PARCELS, None, parcel_id, district)
        if not gold and not survey:
            return None
        one_map = place(gold[0]) if gold else None
        years = sorted((place(r) for r in survey), key=lambda r: r["survey_year"])
        for r in years:
            for k in [k for k in r if k.startswith("_")]:
                del r[k]
        first = one_map or years[-1]
        return {"parcel_id": parcel_id, "district_code": first["district_code"], "centre": first["centre"],
                "bbox": first["bbox"], "one_map": one_map, "survey": years}

    @staticmethod
    def _parcel_rows(spec: TableSpec, version: int | None, parcel_id: str, district: str) -> list[dict[str, Any]]:
        """Rows of one parcel, reading only its district's files (the tables are partitioned by district)."""
        table = delta_io.open_table(spec, version)
        if table is None:
            return []
        known = district in district_codes()  # survey ids start with their district's code
        files = table.file_uris(partition_filters=[("district_code", "=", district)] if known else None)
        if not files:
            return []
        columns = [n for n in spec.schema.names if n not in ("geometry", "district_code")]
        with duckdb.connect() as con:  # DuckDB reads the string_view columns delta-rs writes (pyarrow filters do not)
            found = con.execute(f"select {', '.join(columns)}, filename from read_parquet(?, filename = true) "
                                "where parcel_id = ?", [files, parcel_id]).to_arrow_table()
        return [{**{k: v for k, v in r.items() if k != "filename"}, "district_code": _partition(r["filename"])}
                for r in found.to_pylist()]

    def search_buildings(self, text: str, limit: int) -> list[dict[str, Any]]:
        table, index = self.buildings()
        if text in index:
            return [self.building(text)]
        matches = pc.or_(pc.match_substring(table.column("building_id"), text, ignore_case=True),
                         pc.fill_null(pc.match_substring(table.column("name"), text, ignore_case=True), False))
        hits = pa.array(pc.indices_nonzero(matches).to_pylist()[:limit], pa.int64())
        return [place(r) for r in table.take(hits).select(["building_id", "name", "district_code",
                                                            *BBOX_COLUMNS]).to_pylist()]
