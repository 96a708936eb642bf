"""What the viewer's JSON endpoints read from the lake: gold as published, silver buildings and districts.

Read-only through delta-rs. Small tables (districts, indicators, conflicts, building attributes) are loaded once per
gold build id (gold) or per Delta version (silver) and kept in memory; whether either moved is checked at most every
couple of seconds, so a request costs a dictionary lookup and a new publish is visible within that interval.
Parcels (up to millions) are never loaded whole: a lookup reads one district partition with a predicate.
Every answer is cut to the caller's grant (its rows and columns) before anything is derived from it.
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
from lake.releases import Release, current_release
from lake.access.grants import TableGrant
from lake.registry import (BBOX_COLUMNS, BUILDINGS, DISTRICTS, GOLD_CONFLICTS, GOLD_DISTRICT_INDICATORS,
                           GOLD_ONE_MAP_PARCELS, PARCELS, TableSpec)
from twin_viewer.server.twin_grants import granted_rows, restrict, visible

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

    def release(self) -> Release | None:
        """The current gold release: every gold read below is pinned to its versions, never a table's head."""
        return self._stamp("release", current_release)

    def build_id(self) -> str | None:
        release = self.release()
        return release.build_id if release else None

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
        """A gold table at the current release's version (None before the first publish)."""
        release = self.release()
        if release is None or spec.key not in release.versions:
            return None
        return delta_io.read_table(spec, columns=columns, version=release.versions[spec.key])

    # --- tables -----------------------------------------------------------------------------------------------
    def buildings(self) -> tuple[pa.Table, dict[str, int]]:
        """Building attributes (no geometry) and an index building_id → row."""
        def load() -> tuple[pa.Table, dict[str, int]]:
            table = delta_io.read_table(BUILDINGS, columns=BUILDING_COLUMNS)
            return table, {bid: i for i, bid in enumerate(table.column("building_id").to_pylist())}
        return self._cached("buildings", self.silver_version(BUILDINGS), load)

    def building(self, building_id: str, grant: TableGrant) -> dict[str, Any] | None:
        """The building's granted attributes; None when unknown or outside the grant's districts."""
        table, index = self.buildings()
        row = index.get(building_id)
        if row is None:
            return None
        raw = table.slice(row, 1).to_pylist()[0]
        if not visible(grant, raw):
            return None
        out = place(restrict(grant, raw))
        if "_source_uri" in out:
            out["source"] = (out.pop("_source_uri") or "").rsplit("/", 1)[-1] or None
        if "_ingested_at" in out:
            out["ingested_at"] = out.pop("_ingested_at")
        return out

    def _district_rows(self) -> list[dict[str, Any]]:
        """Every district's row (no geometry) with a `centre` inside its outline, by code."""
        def load() -> list[dict[str, Any]]:
            table = delta_io.read_table(DISTRICTS, columns=["district_code", "name", "area_m2", "geometry",
                                                            *BBOX_COLUMNS])
            inside = shapely.point_on_surface(shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)))
            rows = [{**row, "centre": [float(shapely.get_x(point)), float(shapely.get_y(point))]}
                    for row, point in zip(table.drop_columns(["geometry"]).to_pylist(), inside, strict=True)]
            return sorted(rows, key=lambda r: r["district_code"])
        return self._cached("districts", self.silver_version(DISTRICTS), load)

    def districts(self, grant: TableGrant) -> list[dict[str, Any]]:
        """The granted districts with name, area, bbox and a centre inside the outline (for labels and flying);
        fields of columns not granted are null."""
        return [{"code": r.get("district_code"), "name": r.get("name"),
                 "area_km2": round(r["area_m2"] / 1e6, 2) if r.get("area_m2") else None,
                 "bbox": _bbox(r), "centre": r.get("centre")} for r in granted_rows(grant, self._district_rows())]

    def region_bbox(self, grant: TableGrant) -> list[float] | None:
        boxes = [d["bbox"] for d in self.districts(grant) if d["bbox"]]
        if not boxes:
            return None
        return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]

    def _indicator_rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """The plan indicators present in the published table (names, units, targets) and its rows."""
        def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
            table = self.gold(GOLD_DISTRICT_INDICATORS)
            if table is None:
                return None
            present = [t for t in plan_targets() if t["indicator_id"] in table.column_names]
            return [{"id": t["indicator_id"], "name_zh": t["name_zh"], "name_en": t["name_en"], "unit": t["unit"],
                     "target_2025": float(t["target_2025"]), "direction": t["direction"], "binding": t["binding"]}
                    for t in present], table.to_pylist()
        return self._cached("indicators", self.build_id(), load)

    def indicators(self, grant: TableGrant) -> dict[str, Any] | None:
        """Each granted district (and the region, when granted) against the 2025 targets, for the indicators whose
        value column is granted."""
        loaded = self._indicator_rows()
        if loaded is None:
            return None
        shown = [i for i in loaded[0] if i["id"] in grant.columns]
        rows = []
        for r in granted_rows(grant, loaded[1]):
            values = {i["id"]: {"value": r.get(i["id"]), "target": r.get(f"{i['id']}_target"),
                                "status": r.get(f"{i['id']}_status")} for i in shown}
            rows.append({"code": r.get("district_code"), "name": r.get("district_name"),
                         "region": r.get("district_code") == REGION_CODE, "survey_year": r.get("survey_year"),
                         "values": values})
        rows.sort(key=lambda r: (not r["region"], r["code"] or ""))
        return {"build_id": self.build_id(), "indicators": shown, "rows": rows}

    def conflicts(self, grant: TableGrant) -> list[dict[str, Any]]:
        """The granted published conflicts without geometry, most severe and largest first as far as the granted
        columns tell (an ungranted column does not order them either)."""
        def rows() -> list[dict[str, Any]]:
            columns = [c for c in GOLD_CONFLICTS.schema.names if c != "geometry"]
            table = self.gold(GOLD_CONFLICTS, columns=columns)
            return table.to_pylist() if table is not None else []

        def load() -> list[dict[str, Any]]:
            granted = granted_rows(grant, self._cached("conflict_rows", self.build_id(), rows))
            granted.sort(key=lambda r: (SEVERITY_ORDER.get(r.get("severity"), 2), -(r.get("area_m2") or 0),
                                        r.get("conflict_id") or ""))
            return [place(r) for r in granted]
        return self._cached(f"conflicts {grant.columns} {grant.districts}", self.build_id(), load)

    def parcel(self, parcel_id: str, gold: TableGrant | None, survey: TableGrant | None) -> dict[str, Any] | None:
        """The one-map row of a parcel (latest survey year, with a `gold` grant) and its survey rows of every year
        (with a `survey` grant on silver parcels), cut to the grants; None when neither has it."""
        district, release = parcel_id[:6], self.release()
        gold_version = release.versions.get(GOLD_ONE_MAP_PARCELS.key) if release else None
        one_map_rows = granted_rows(gold, self._parcel_rows(GOLD_ONE_MAP_PARCELS, gold_version, parcel_id, district)) \
            if gold is not None and gold_version is not None else []
        survey_rows = granted_rows(survey, self._parcel_rows(PARCELS, None, parcel_id, district)) \
            if survey is not None else []
        if not one_map_rows and not survey_rows:
            return None
        one_map = place(one_map_rows[0]) if one_map_rows else None
        years = sorted((place(r) for r in survey_rows), key=lambda r: r.get("survey_year") or 0)
        for r in years:
            for k in [k for k in r if k.startswith("_")]:
                del r[k]
        first = one_map or years[-1]
        return {"parcel_id": parcel_id, "district_code": first.get("district_code"), "centre": first["centre"],
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

    def search_buildings(self, text: str, limit: int, grant: TableGrant) -> list[dict[str, Any]]:
        """Buildings of the grant's districts whose id or name (those granted) contain `text`; an exact id first."""
        table, index = self.buildings()
        if "building_id" in grant.columns and text in index:
            hit = self.building(text, grant)
            return [hit] if hit is not None else []
        matches = [pc.fill_null(pc.match_substring(table.column(c), text, ignore_case=True), False)
                   for c in ("building_id", "name") if c in grant.columns]
        if not matches:
            return []
        found = matches[0] if len(matches) == 1 else pc.or_(*matches)
        if grant.districts is not None:
            inside = pc.is_in(table.column("district_code").cast(pa.string()),
                              value_set=pa.array(grant.districts, pa.string()))
            found = pc.and_(found, pc.fill_null(inside, False))
        hits = pa.array(pc.indices_nonzero(found).to_pylist()[:limit], pa.int64())
        return [place(restrict(grant, r)) for r in table.take(hits).select(["building_id", "name", "district_code",
                                                                             *BBOX_COLUMNS]).to_pylist()]
