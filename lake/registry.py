"""The table registry: every lake table's layer, name, schema, partitioning and primary key.

Nothing else builds lake paths by hand (DESIGN §3); readers, writers, the CLI, DuckDB views and Dagster assets
all come from here. A feed contract targets a registered table by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from lake.settings import current_settings

BBOX_COLUMNS = ("bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax")

LINEAGE_FIELDS = [
    pa.field("_feed", pa.string()),
    pa.field("_source_uri", pa.string()),
    pa.field("_source_sha256", pa.string()),
    pa.field("_batch_id", pa.string()),
    pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
    pa.field("_row_number", pa.int64()),
    pa.field("_row_hash", pa.string()),  # content hash from incremental readers (STAC API), else null
]

GEOMETRY_FIELDS = [pa.field("geometry", pa.binary()), *(pa.field(c, pa.float64()) for c in BBOX_COLUMNS)]


@dataclass(frozen=True)
class TableSpec:
    """One lake table. `columns` are the canonical (non-lineage, non-geometry) columns."""

    layer: str
    name: str
    columns: tuple[pa.Field, ...]
    primary_key: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    geometry_types: tuple[str, ...] = ()  # shapely type names allowed; empty = no geometry
    required: tuple[str, ...] = ()
    description: str = ""
    lineage: bool = True
    extra_properties: dict[str, str] = field(default_factory=dict)
    group: str = "survey"  # Dagster asset group of the feed table: survey | imagery | cim
    parent: str | None = None  # child tables (rows written with their parent's rows) name the parent table
    region_rule: str = "within"  # where rows must lie against the region: within | intersects | off
    text_max: int | None = None  # most characters any string column takes (None: unbounded, e.g. STAC JSON)
    max_lengths: dict[str, int] = field(default_factory=dict)  # narrower maxima a standard fixes, by column

    @property
    def key(self) -> str:
        return f"{self.layer}/{self.name}"

    @property
    def has_geometry(self) -> bool:
        return bool(self.geometry_types)

    @property
    def schema(self) -> pa.Schema:
        fields = list(self.columns)
        if self.has_geometry:
            fields += GEOMETRY_FIELDS
        if self.lineage:
            fields += LINEAGE_FIELDS
        return pa.schema(fields)

    @property
    def uri(self) -> str:
        return table_uri(self.layer, self.name)

    def text_limits(self) -> dict[str, int]:
        """Maximum length (characters) of each bounded string column; longer values are quarantined on ingest."""
        limits = {c.name: self.max_lengths.get(c.name, self.text_max) for c in self.columns
                  if pa.types.is_string(c.type)}
        return {name: limit for name, limit in limits.items() if limit is not None}

    def table_properties(self) -> dict[str, str]:
        """Recorded in the Delta table's properties so any engine can find the geometry contract."""
        props = {"onemap.layer": self.layer, "onemap.primary_key": ",".join(self.primary_key), **self.extra_properties}
        if self.has_geometry:
            props |= {"onemap.geometry_columns": "geometry", "onemap.geometry_encoding": "WKB",
                      "onemap.crs": "EPSG:4490", "onemap.bbox_columns": ",".join(BBOX_COLUMNS)}
        return props


def table_uri(layer: str, name: str) -> str:
    return f"{current_settings().lake_uri.rstrip('/')}/{layer}/{name}"


def _f(name: str, typ: pa.DataType) -> pa.Field:
    return pa.field(name, typ)


S, F64, I32, I64 = pa.string(), pa.float64(), pa.int32(), pa.int64()

# Text maxima of the survey tables, in characters. TEXT_MAX is the widest character field a dBASE table (the
# Shapefile's .dbf) can hold: longer text never came from a survey-format field. Narrower maxima are the field widths
# of the national land-survey database standard (三调 DLTB: BSM Char(18), TBBH Char(8), DLBM Char(5), DLMC Char(60),
# ZLDWDM Char(19), CZCSXM Char(4)) and of the county code (GB/T 2260: 6 digits). The standard counts bytes of a GBK
# .dbf; counting characters never rejects what the standard allows.
TEXT_MAX = 254
DISTRICT_CODE_LENGTH = {"district_code": 6}

# --- silver: the canonical survey tables --------------------------------------------------------------------
PARCELS = TableSpec(
    "silver", "parcels",
    columns=(
        _f("parcel_id", S), _f("parcel_number", S), _f("survey_year", I32), _f("district_code", S),
        _f("land_class_code", S), _f("land_class_name", S), _f("locating_unit_code", S),
        _f("reported_area_m2", F64), _f("deduction_factor", F64), _f("deduction_area_m2", F64),
        _f("urban_rural_code", S), _f("area_m2", F64), _f("net_area_m2", F64),
    ),
    primary_key=("parcel_id", "survey_year"), partition_by=("district_code",),
    geometry_types=("Polygon", "MultiPolygon"), required=("parcel_id", "survey_year", "district_code", "land_class_code"),
    text_max=TEXT_MAX, max_lengths={"parcel_id": 18, "parcel_number": 8, "land_class_code": 5, "land_class_name": 60,
                                    "locating_unit_code": 19, "urban_rural_code": 4, **DISTRICT_CODE_LENGTH},
    description="Land-survey parcels (三调 图斑 DLTB), one row per parcel and survey year; area_m2 is ellipsoidal "
                "on CGCS2000, net_area_m2 deducts field ridges (KCXS/KCMJ).",
)
CONTROL_LINES = TableSpec(
    "silver", "control_lines",
    columns=(_f("line_id", S), _f("line_type", S), _f("name", S), _f("district_code", S),
             _f("reported_area_m2", F64), _f("area_m2", F64)),
    primary_key=("line_id",), partition_by=("district_code",),
    geometry_types=("Polygon", "MultiPolygon"), required=("line_id", "line_type", "district_code"),
    text_max=TEXT_MAX, max_lengths=DISTRICT_CODE_LENGTH,
    description="The three planning control lines: ecological_red_line (生态保护红线), permanent_basic_farmland "
                "(永久基本农田), urban_development_boundary (城镇开发边界).",
    extra_properties={"onemap.line_types": "ecological_red_line,permanent_basic_farmland,urban_development_boundary"},
)
DISTRICTS = TableSpec(
    "silver", "districts",
    columns=(_f("district_code", S), _f("name", S), _f("area_m2", F64)),
    primary_key=("district_code",),
    geometry_types=("Polygon", "MultiPolygon"), required=("district_code",),
    text_max=TEXT_MAX, max_lengths=DISTRICT_CODE_LENGTH,
    description="Districts and counties (区县) with their 6-digit administrative code.",
)
HAZARD_POINTS = TableSpec(
    "silver", "hazard_points",
    columns=(_f("hazard_id", S), _f("hazard_type", S), _f("scale", S), _f("threatened_people", I64),
             _f("monitoring_level", S), _f("district_code", S)),
    primary_key=("hazard_id",), partition_by=("district_code",),
    geometry_types=("Point",), required=("hazard_id", "district_code"),
    text_max=TEXT_MAX, max_lengths=DISTRICT_CODE_LENGTH,
    description="Geological hazard points (地质灾害隐患点).",
)
BUILDINGS = TableSpec(
    "silver", "buildings",
    columns=(_f("building_id", S), _f("name", S), _f("function", S), _f("storeys", I32), _f("height_m", F64),
             _f("district_code", S), _f("lod", S), _f("source_format", S), _f("source_crs", S), _f("area_m2", F64)),
    primary_key=("building_id",), partition_by=("district_code",),
    geometry_types=("Polygon", "MultiPolygon"), required=("building_id", "district_code"),
    text_max=TEXT_MAX, max_lengths=DISTRICT_CODE_LENGTH,
    description="Buildings: footprint (CGCS2000) with height and storeys, from survey footprints and CIM/BIM models.",
)
SURVEY_TABLES = (DISTRICTS, PARCELS, CONTROL_LINES, HAZARD_POINTS, BUILDINGS)

# --- silver: remote-sensing catalog (STAC items and their assets) -------------------------------------------
TS = pa.timestamp("us", tz="UTC")
STAC_ITEMS = TableSpec(
    "silver", "stac_items",
    columns=(
        _f("collection", S), _f("item_id", S), pa.field("datetime", TS), pa.field("start_datetime", TS),
        pa.field("end_datetime", TS), _f("cloud_cover", F64), _f("gsd", F64), _f("platform", S),
        _f("constellation", S), _f("instruments", S), _f("epsg", I32), _f("stac_version", S),
        _f("stac_extensions", S), _f("properties", S), _f("links", S), _f("self_href", S),
    ),
    primary_key=("collection", "item_id"), partition_by=("collection",),
    geometry_types=("Polygon", "MultiPolygon"), required=("collection", "item_id"),
    description="STAC items (imagery scenes, DEMs): footprint, acquisition time, cloud cover, GSD, platform, "
                "projection; `properties` and `links` keep the item's full JSON.",
    group="imagery", region_rule="intersects",
)
STAC_ASSETS = TableSpec(
    "silver", "stac_assets",
    columns=(_f("collection", S), _f("item_id", S), _f("asset_key", S), _f("href", S), _f("media_type", S),
             _f("roles", S), _f("title", S), _f("size_bytes", I64)),
    primary_key=("collection", "item_id", "asset_key"), partition_by=("collection",),
    description="The assets of each STAC item (COGs, DEMs, thumbnails, metadata), written with their item.",
    group="imagery", parent="stac_items",
)
STAC_TABLES: tuple[TableSpec, ...] = (STAC_ITEMS, STAC_ASSETS)

# --- silver: CIM/BIM (building meshes for the twin; buildings themselves are in BUILDINGS) ------------------
BUILDING_MESHES = TableSpec(
    "silver", "building_meshes",
    columns=(_f("building_id", S), _f("lod", S), _f("district_code", S),
             _f("origin_lon", F64), _f("origin_lat", F64), _f("origin_height", F64), _f("height_reference", S),
             _f("vertex_count", I32), _f("triangle_count", I32),
             _f("positions", pa.binary()), _f("indices", pa.binary())),
    primary_key=("building_id", "lod"), partition_by=("district_code",),
    description="One triangulated mesh per building (IFC, CityGML, CityJSON), written with its building. "
                "positions: little-endian float32 x,y,z triples in metres in the local east-north-up frame whose "
                "origin is (origin_lon, origin_lat) on CGCS2000 at origin_height; indices: little-endian uint32 "
                "triangles (counter-clockwise as delivered). Heights are the source's (height_reference names "
                "its vertical CRS when the source declares one).",
    extra_properties={"onemap.mesh_encoding": "positions=float32le xyz ENU metres; indices=uint32le triangles",
                      "onemap.mesh_frame": "ENU at origin_lon/origin_lat (EPSG:4490), origin_height"},
    group="cim", parent="buildings",
)
CIM_TABLES: tuple[TableSpec, ...] = (BUILDING_MESHES,)

SILVER_TABLES = (*SURVEY_TABLES, *STAC_TABLES, *CIM_TABLES)
FEED_TABLES = tuple(s for s in SILVER_TABLES if s.parent is None)  # tables a feed contract can target

# --- bronze and quarantine: one per silver table, schema-stable whatever the feed's columns ------------------
_DELIVERED = (
    _f("layer_name", S),
    pa.field("attributes", pa.map_(pa.string(), pa.string())),
    _f("source_geometry", pa.binary()),
    _f("source_crs", S),
)


def _bronze(spec: TableSpec) -> TableSpec:
    return TableSpec("bronze", spec.name, columns=_DELIVERED,
                     description=f"{spec.name} as delivered (attributes and geometry in the source CRS) + lineage.")


def _quarantine(spec: TableSpec) -> TableSpec:
    return TableSpec("quarantine", spec.name, columns=(_f("rule_id", S), _f("reason", S), *_DELIVERED),
                     description=f"Rows of {spec.name} deliveries that failed a rule, with the rule id and reason.")


BRONZE = {s.name: _bronze(s) for s in FEED_TABLES}
QUARANTINE = {s.name: _quarantine(s) for s in FEED_TABLES}

# --- meta: one row per ingest batch (a source file delivered to a feed) -------------------------------------
INGEST_LOG = TableSpec(
    "meta", "ingest_log",
    columns=(_f("batch_id", S), _f("feed", S), _f("table_name", S), _f("source_uri", S), _f("source_sha256", S),
             _f("status", S), _f("message", S), _f("rows_read", I64), _f("rows_silver", I64),
             _f("rows_quarantined", I64), pa.field("started_at", pa.timestamp("us", tz="UTC")),
             pa.field("finished_at", pa.timestamp("us", tz="UTC"))),
    primary_key=("batch_id",), lineage=False,
    description="Every ingest batch with its outcome; a succeeded (feed, sha256) makes a re-delivery a no-op.",
)

# --- gold: the published one map (transforms/ marts, written only through quality gates) -------------------
B, TSU = pa.bool_(), pa.timestamp("us", tz="UTC")
GOLD_ONE_MAP_PARCELS = TableSpec(
    "gold", "one_map_parcels",
    columns=(
        _f("parcel_id", S), _f("survey_year", I32), _f("district_code", S), _f("land_class_code", S),
        _f("land_class_name", S), _f("land_class_name_en", S), _f("group_code", S), _f("group_name", S),
        _f("three_category", S), _f("is_construction", B), _f("is_cultivated", B), _f("urban_rural_code", S),
        _f("area_m2", F64), _f("net_area_m2", F64), _f("ecological_red_line_m2", F64),
        _f("permanent_basic_farmland_m2", F64), _f("urban_development_boundary_m2", F64),
        _f("building_count", I64), _f("building_footprint_m2", F64), _f("latest_scene_id", S),
        pa.field("latest_scene_datetime", TSU), _f("hazards_within_200m", I64), _f("conflict_rules", S),
    ),
    primary_key=("parcel_id",), partition_by=("district_code",), geometry_types=("Polygon", "MultiPolygon"),
    lineage=False, group="one_map",
    description="One row per parcel of the latest survey year with land class, overlaps with the control lines, "
                "buildings, latest usable scene, hazards within 200 m and conflict flags.",
)
GOLD_CONFLICTS = TableSpec(
    "gold", "control_line_conflicts",
    columns=(_f("conflict_id", S), _f("rule_id", S), _f("severity", S), _f("district_code", S), _f("parcel_id", S),
             _f("building_id", S), _f("land_class_code", S), _f("area_m2", F64)),
    primary_key=("conflict_id",), partition_by=("district_code",), geometry_types=("Polygon", "MultiPolygon"),
    lineage=False, group="one_map",
    description="One row per conflict between land use and a control line (rule, severity, geometry, area).",
)
GOLD_LAND_CHANGE = TableSpec(
    "gold", "land_change",
    columns=(_f("parcel_id", S), _f("district_code", S), _f("from_year", I32), _f("to_year", I32),
             _f("from_class", S), _f("to_class", S), _f("from_category", S), _f("to_category", S),
             _f("change_type", S), _f("area_m2", F64)),
    primary_key=("parcel_id", "from_year", "to_year"), partition_by=("district_code",),
    geometry_types=("Polygon", "MultiPolygon"), lineage=False, group="one_map",
    description="Parcel-level land-class transitions between the two latest survey years, with area.",
)
_INDICATORS = ("development_intensity", "cultivated_land_area", "permanent_basic_farmland_area",
               "ecological_red_line_area", "urban_rural_construction_land", "forest_cover")
GOLD_DISTRICT_INDICATORS = TableSpec(
    "gold", "district_indicators",
    columns=(_f("district_code", S), _f("district_name", S), _f("survey_year", I32),
             *(f for i in _INDICATORS for f in (_f(i, F64), _f(f"{i}_target", F64), _f(f"{i}_status", S)))),
    primary_key=("district_code",), lineage=False, group="one_map",
    description="Per district and region-wide (500000): each plan indicator beside its 2025 target and a status "
                "(met / at risk / breached); units and formulas in transforms/models/marts/marts.yml.",
)
GOLD_IMAGERY_COVERAGE = TableSpec(
    "gold", "imagery_coverage",
    columns=(_f("district_code", S), _f("month", S), _f("scenes", I64), _f("cloud_free_scenes", I64),
             _f("cloud_free_coverage", F64)),
    primary_key=("district_code", "month"), lineage=False, group="one_map",
    description="Per district and month: imagery scenes and the share of the district covered cloud-free.",
)
GOLD_TABLES: tuple[TableSpec, ...] = (GOLD_ONE_MAP_PARCELS, GOLD_CONFLICTS, GOLD_LAND_CHANGE,
                                      GOLD_DISTRICT_INDICATORS, GOLD_IMAGERY_COVERAGE)
PUBLISH_LOG = TableSpec(
    "meta", "publish_log",
    columns=(_f("build_id", S), _f("status", S), _f("districts", S), _f("table_versions", S),
             _f("gate_results", S), pa.field("published_at", TSU)),
    primary_key=("build_id",), lineage=False, group="one_map",
    description="Every one-map build: published or blocked, the gold Delta version of each table, gate results "
                "(JSON). Consumers read the versions of the latest published row.",
)

# --- meta: the audit trail of department access (HTTP API: OGC API Features, STAC API, SQL) ----------------
AUDIT_LOG = TableSpec(
    "meta", "audit_log",
    columns=(_f("request_id", S), pa.field("at", TSU), _f("department", S), _f("token_id", S), _f("method", S),
             _f("endpoint", S), _f("parameters", S), pa.field("status", I32), _f("outcome", S), _f("message", S),
             _f("rows", I64), _f("duration_ms", F64), _f("client", S)),
    primary_key=("request_id",), lineage=False,
    description="Every HTTP API request, refused ones included: who (department, token id), what (endpoint, query "
                "text or parameters), when, rows returned, duration and outcome (ok | refused | bad_request | "
                "timeout | error).",
)

ALL_TABLES: tuple[TableSpec, ...] = (*SILVER_TABLES, *BRONZE.values(), *QUARANTINE.values(), INGEST_LOG,
                                     *GOLD_TABLES, PUBLISH_LOG, AUDIT_LOG)
_BY_KEY = {t.key: t for t in ALL_TABLES}
SILVER = {s.name: s for s in SILVER_TABLES}


def get_table(key: str) -> TableSpec:
    """Look a table up by `layer/name` (or a bare silver name)."""
    spec = _BY_KEY.get(key) or SILVER.get(key)
    if spec is None:
        known = ", ".join(sorted(_BY_KEY))
        raise KeyError(f"unknown table {key!r}; known tables: {known}")
    return spec
