"""Spatial, topology and integrity gates as DuckDB spatial SQL over the build database (staging views + marts).

Each rule is one query returning its failing rows: an id column first, then `detail`, `x`, `y` (a lon/lat to
put on the report's map). On an incremental build, parcel rules look only at the rebuilt districts.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from lake import domain
from lake.registry import QUARANTINE, INGEST_LOG
from lake.delta_io import open_table
from quality.catalog import rules
from quality.results import RuleResult

OVERLAP_TOLERANCE_M2 = 1.0
GAP_TOLERANCE_M2, GAP_TOLERANCE_REL = 100.0, 1e-6
RECONCILE_TOLERANCE = 0.005
SAMPLES, LOCATIONS = 20, 2000


def in_districts(column: str, districts: list[str] | None) -> str:
    """SQL condition: `column` is one of the rebuilt districts (true on a whole-region build)."""
    return f"{column} in ({', '.join(repr(d) for d in districts)})" if districts else "true"


def _area(geom: str) -> str:
    return f"st_area_spheroid(st_flipcoordinates({geom}))"


def _region_outside(prefix: str = "") -> str:
    xmin, ymin, xmax, ymax = domain.REGION_BBOX
    return (f"st_xmin({prefix}geom) < {xmin} or st_ymin({prefix}geom) < {ymin} or st_xmax({prefix}geom) > {xmax} "
            f"or st_ymax({prefix}geom) > {ymax}")


def _quarantined_latest(table: str, rule_filter: str = "true") -> str:
    """Quarantined rows of the latest succeeded batch of each source of `table`."""
    return f"""
        select q.rule_id, q.reason, q._source_uri, q._row_number
        from delta_scan('{QUARANTINE[table].uri}') as q
        join (select source_uri, arg_max(batch_id, finished_at) as batch_id
              from delta_scan('{INGEST_LOG.uri}') where table_name = '{table}' and status = 'succeeded'
              group by source_uri) as latest
          on q._batch_id = latest.batch_id
        where {rule_filter}"""


def quarantined_in_latest_delivery(d: list[str] | None) -> str:
    parts = [f"select '{t}:' || _source_uri || '#' || _row_number as row_ref, rule_id || ': ' || reason as detail, "
             f"null::double as x, null::double as y from ({_quarantined_latest(t)})"
             for t in ("parcels", "control_lines", "districts", "buildings", "hazard_points")
             if open_table(QUARANTINE[t]) is not None and open_table(INGEST_LOG) is not None]
    return " union all ".join(parts) or "select null as row_ref, null as detail, null as x, null as y where false"


def control_line_not_polygon(d: list[str] | None) -> str:
    quarantined = ""
    if open_table(QUARANTINE["control_lines"]) is not None and open_table(INGEST_LOG) is not None:
        quarantined = (f"union all select _source_uri || '#' || _row_number, rule_id || ': ' || reason, null, null "
                       f"from ({_quarantined_latest('control_lines')})")
    return f"""
        select line_id, 'invalid or not polygonal: ' || st_geometrytype(geom) as detail,
               st_x(st_centroid(geom)) as x, st_y(st_centroid(geom)) as y
        from stg_control_lines
        where not st_isvalid(geom) or st_geometrytype(geom) not in ('POLYGON', 'MULTIPOLYGON')
        {quarantined}"""


def parcel_geometry_valid(d: list[str] | None) -> str:
    return f"""
        select parcel_id || '/' || survey_year as parcel, 'invalid: ' || st_geometrytype(geom) as detail,
               st_x(st_pointonsurface(geom)) as x, st_y(st_pointonsurface(geom)) as y
        from stg_parcels where {in_districts('district_code', d)}
          and (not st_isvalid(geom) or st_geometrytype(geom) not in ('POLYGON', 'MULTIPOLYGON'))"""


def parcel_inside_region(d: list[str] | None) -> str:
    return f"""
        select parcel_id || '/' || survey_year as parcel, 'outside the region extent' as detail,
               st_x(st_centroid(geom)) as x, st_y(st_centroid(geom)) as y
        from stg_parcels where {in_districts('district_code', d)} and ({_region_outside()})"""


def parcel_outside_district(d: list[str] | None) -> str:
    return f"""
        with points as (
            select parcel_id, survey_year, district_code, st_pointonsurface(geom) as point
            from stg_parcels where {in_districts('district_code', d)}
        ),
        located as (
            select points.parcel_id, points.survey_year, points.district_code, points.point,
                   districts.district_code as found
            from points left join stg_districts as districts on st_intersects(districts.geom, points.point)
        )
        select parcel_id || '/' || survey_year as parcel,
               'coded ' || district_code || ', lies in ' || coalesce(string_agg(found, ','), 'no district') as detail,
               st_x(any_value(point)) as x, st_y(any_value(point)) as y
        from located
        group by parcel_id, survey_year, district_code
        having not coalesce(bool_or(found = district_code), false)"""


def _district_sums(d: list[str] | None) -> str:
    return f"""
        with years as (select distinct survey_year from stg_parcels),
        sums as (select district_code, survey_year, sum(area_m2) as parcels_m2 from stg_parcels
                 where {in_districts('district_code', d)} group by all)
        select districts.district_code, years.survey_year, districts.area_m2 as district_m2,
               coalesce(sums.parcels_m2, 0) as parcels_m2,
               st_x(st_pointonsurface(districts.geom)) as x, st_y(st_pointonsurface(districts.geom)) as y
        from stg_districts as districts cross join years
        left join sums on sums.district_code = districts.district_code and sums.survey_year = years.survey_year
        where {in_districts('districts.district_code', d)}"""


def district_gap(d: list[str] | None) -> str:
    return f"""
        select district_code || '/' || survey_year as district,
               'parcels cover ' || round(district_m2 - parcels_m2, 1) || ' m² less than the district' as detail, x, y
        from ({_district_sums(d)})
        where district_m2 - parcels_m2 > greatest({GAP_TOLERANCE_M2}, {GAP_TOLERANCE_REL} * district_m2)"""


def district_area_reconciles(d: list[str] | None) -> str:
    return f"""
        select district_code || '/' || survey_year as district,
               'Σ parcels ' || round(parcels_m2 / 1e6, 3) || ' km² vs district ' || round(district_m2 / 1e6, 3)
               || ' km² (' || round(100 * (parcels_m2 - district_m2) / district_m2, 3) || '%)' as detail, x, y
        from ({_district_sums(d)})
        where abs(parcels_m2 - district_m2) > {RECONCILE_TOLERANCE} * district_m2"""


def building_inside_region(d: list[str] | None) -> str:
    return f"""
        with points as (select building_id, st_pointonsurface(geom) as point from stg_buildings
                        where {in_districts('district_code', d)})
        select points.building_id, 'footprint outside every district' as detail,
               st_x(points.point) as x, st_y(points.point) as y
        from points left join stg_districts as districts on st_intersects(districts.geom, points.point)
        where districts.district_code is null"""


def referential_integrity(d: list[str] | None) -> str:
    checks = [("stg_parcels", "parcel_id"), ("stg_control_lines", "line_id"), ("stg_buildings", "building_id"),
              ("stg_hazard_points", "hazard_id"), ("one_map_parcels", "parcel_id"),
              ("control_line_conflicts", "conflict_id")]
    return " union all ".join(
        f"""select '{t}:' || {k} as row_ref, 'unknown district ' || coalesce(district_code, 'null') as detail,
                   null::double as x, null::double as y
            from {t} where {in_districts('district_code', d)}
              and district_code not in (select district_code from stg_districts)""" for t, k in checks)


def stac_items_valid(d: list[str] | None) -> str:
    return """
        select collection || '/' || item_id as item, 'missing footprint, datetime or collection' as detail,
               null::double as x, null::double as y
        from stg_stac_items where geom is null or acquired_at is null or collection is null"""


SPATIAL_RULES: dict[str, Callable[[list[str] | None], str]] = {
    "QUARANTINED_IN_LATEST_DELIVERY": quarantined_in_latest_delivery,
    "CONTROL_LINE_NOT_POLYGON": control_line_not_polygon,
    "PARCEL_GEOMETRY_VALID": parcel_geometry_valid,
    "PARCEL_INSIDE_REGION": parcel_inside_region,
    "PARCEL_OUTSIDE_DISTRICT": parcel_outside_district,
    "DISTRICT_GAP": district_gap,
    "DISTRICT_AREA_RECONCILES": district_area_reconciles,
    "BUILDING_INSIDE_REGION": building_inside_region,
    "REFERENTIAL_INTEGRITY": referential_integrity,
    "STAC_ITEMS_VALID": stac_items_valid,
}


def run_spatial_rules(con: duckdb.DuckDBPyConnection, districts: list[str] | None = None) -> list[RuleResult]:
    catalog = rules()
    results = []
    for rule_id, sql in SPATIAL_RULES.items():
        rel = con.sql(sql(districts))
        columns = rel.columns
        rows = rel.fetchall()
        samples = [{columns[0]: r[0], "detail": r[1]} for r in rows[:SAMPLES]]
        locations = [(r[2], r[3]) for r in rows[:LOCATIONS] if r[2] is not None]
        results.append(RuleResult(catalog[rule_id], len(rows), samples, locations))
    return results
