"""The one-map marts on Spark, mirroring transforms/models (same rules, settings, keys, tolerances, statuses).

The dbt seeds (land classes, rule settings, plan targets, indicator definitions) are read from the dbt project, so
one file configures both engines. Each mart is written as Parquet to the engine's build folder and read back by
the marts that use it (like dbt's ref), which also keeps Spark from recomputing the overlay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from lake.registry import (BUILDINGS, CONTROL_LINES, DISTRICTS, GOLD_CONFLICTS, GOLD_DISTRICT_INDICATORS,
                           GOLD_LAND_CHANGE, GOLD_ONE_MAP_PARCELS, HAZARD_POINTS, PARCELS, STAC_ITEMS, TableSpec)
from lake.spark import read_delta
from lake.spark_engine import geometry, overlay
from lake.spark_engine.tiles import DEFAULT_TILE_DEGREES
from lake.transforms_project import PROJECT_DIR

SEEDS = PROJECT_DIR / "seeds"
HAZARD_PREFILTER_DEGREES = 0.005  # int_parcel_hazards' ST_DWithin pre-filter
SPARK_MARTS: tuple[TableSpec, ...] = (GOLD_LAND_CHANGE, GOLD_CONFLICTS, GOLD_ONE_MAP_PARCELS, GOLD_DISTRICT_INDICATORS)


@dataclass(frozen=True)
class EngineOptions:
    tile_degrees: float = DEFAULT_TILE_DEGREES
    max_piece_vertices: int = 64  # dbt var max_piece_vertices


def rule_settings() -> dict[str, str]:
    frame = pd.read_csv(SEEDS / "rule_settings.csv", dtype=str)
    return dict(zip(frame["setting"], frame["value"]))


def _register_seeds(spark: SparkSession) -> None:
    classes = pd.read_csv(SEEDS / "land_classes.csv", dtype=str)
    for flag in ("is_cultivated", "is_forest", "allowed_in_basic_farmland"):
        classes[flag] = classes[flag].str.lower() == "true"
    spark.createDataFrame(classes).createOrReplaceTempView("land_classes")
    targets = pd.read_csv(SEEDS / "plan_targets.csv", dtype={"indicator_id": str, "direction": str})
    spark.createDataFrame(targets[["indicator_id", "target_2025", "direction"]].astype(
        {"target_2025": float})).createOrReplaceTempView("plan_targets")
    definitions = pd.read_csv(SEEDS / "indicator_definitions.csv", dtype={"indicator_id": str,
                                                                          "district_target": str})
    spark.createDataFrame(definitions[["indicator_id", "m2_per_unit", "district_target"]].astype(
        {"m2_per_unit": float})).createOrReplaceTempView("indicator_definitions")
    reservoir = rule_settings()["reservoir_water_is_construction"].lower() == "true"
    spark.sql(f"""
        select code as land_class_code, name_zh as land_class_name, name_en as land_class_name_en, group_code,
               group_name_zh as group_name, three_category, is_cultivated, is_forest, allowed_in_basic_farmland,
               (three_category = 'construction' and (code <> '1103' or {str(reservoir).lower()})) as is_construction
        from land_classes""").createOrReplaceTempView("int_land_classes")


class SparkMarts:
    """Builds the marts into `folder` (one Parquet folder per mart and per reused intermediate)."""

    def __init__(self, spark: SparkSession, folder: Path, options: EngineOptions = EngineOptions()) -> None:
        self.spark, self.folder, self.options = spark, folder, options
        self.settings = rule_settings()
        _register_seeds(spark)
        self._register_sources()

    def _register_sources(self) -> None:
        # A lake table has a file per district and delivery: pack them into a few partitions (fewer, larger tasks).
        parallelism = self.spark.sparkContext.defaultParallelism
        for spec in (PARCELS, CONTROL_LINES, DISTRICTS, BUILDINGS, HAZARD_POINTS):
            read_delta(self.spark, spec).coalesce(parallelism).createOrReplaceTempView(f"stg_{spec.name}")
        self.latest_year = self.spark.sql("select max(survey_year) from stg_parcels").first()[0]
        self.spark.sql(f"""
            select p.parcel_id, p.survey_year, p.district_code, p.land_class_code, c.land_class_name,
                   c.land_class_name_en, c.group_code, c.group_name, c.three_category, c.is_construction,
                   c.is_cultivated, c.is_forest, c.allowed_in_basic_farmland, p.urban_rural_code, p.area_m2,
                   p.net_area_m2, p.geometry, p.bbox_xmin, p.bbox_ymin, p.bbox_xmax, p.bbox_ymax
            from stg_parcels as p left join int_land_classes as c on p.land_class_code = c.land_class_code
            where p.survey_year = {self.latest_year}""").createOrReplaceTempView("latest_parcels")

    def _setting(self, name: str) -> float:
        return float(self.settings[name])

    def _save(self, name: str, frame: DataFrame) -> DataFrame:
        path = str(self.folder / name)
        frame.write.mode("overwrite").parquet(path)
        saved = self.spark.read.parquet(path)
        saved.createOrReplaceTempView(name)
        return saved

    def build(self) -> dict[str, Path]:
        """All Spark marts, in dependency order; returns mart name -> Parquet folder."""
        self.latest_parcels()
        self.overlay()
        self.land_change()
        self.control_line_conflicts()
        self.one_map_parcels()
        self.district_indicators()
        return {spec.name: self.folder / spec.name for spec in SPARK_MARTS}

    # --- intermediate ---------------------------------------------------------------------------------------
    def latest_parcels(self) -> DataFrame:
        """int_parcels_latest, with spheroid_area_m2 measured like ST_Area_Spheroid (geodesic edges)."""
        frame = self.spark.table("latest_parcels")
        schema = pa.schema([*(pa.field(f.name, _arrow_type(f.dataType)) for f in frame.schema.fields),
                            pa.field("spheroid_area_m2", pa.float64())])

        def measure(batches):
            for batch in batches:
                areas = geometry.geodesic_area_m2(shapely.from_wkb(batch.column("geometry").to_numpy(
                    zero_copy_only=False)))
                yield pa.RecordBatch.from_arrays([*batch.columns, pa.array(areas, pa.float64())], schema=schema)

        return self._save("int_parcels_latest", frame.mapInArrow(measure, from_arrow_schema(schema)))

    def overlay(self) -> None:
        """int_parcel_control_overlap, int_building_farmland, buildings/hazards/scenes per parcel."""
        tiles = self.options.tile_degrees
        parcels = self.spark.table("int_parcels_latest")
        pieces = self._save("int_control_pieces", overlay.control_pieces(self.spark.table("stg_control_lines"),
                                                                          self.options.max_piece_vertices))
        pairs = overlay.parcel_control_pairs(parcels, pieces, tiles)
        self._save("int_parcel_control_overlap", pairs.groupBy("parcel_id", "district_code", "line_type").agg(
            F.sum("overlap_m2").alias("overlap_m2"), F.max("covered").alias("any_covered"),
            F.collect_list("inside_wkb").alias("inside_parts")))
        buildings = self.spark.table("stg_buildings")
        parts = overlay.building_farmland_parts(buildings, pieces, tiles)
        self._save("int_building_farmland", self._building_farmland(parts))
        points = overlay.building_points(buildings)
        self._save("int_parcel_buildings", overlay.parcel_buildings(parcels, points, tiles).groupBy("parcel_id").agg(
            F.count("*").alias("building_count"), F.sum("footprint_m2").alias("building_footprint_m2")))
        hazards = overlay.parcel_hazards(parcels, self.spark.table("stg_hazard_points"), tiles,
                                         HAZARD_PREFILTER_DEGREES, self._setting("hazard_radius_m"))
        self._save("int_parcel_hazards", hazards.groupBy("parcel_id").agg(F.count("*").alias("hazards_within_200m")))
        self._save("int_parcel_scenes", overlay.parcel_scenes(parcels, self._usable_scenes()))

    def _usable_scenes(self) -> pa.Table:
        scenes = read_delta(self.spark, STAC_ITEMS).where(
            f"cloud_cover <= {self._setting('max_cloud_cover')} and coalesce(datetime, start_datetime) is not null")
        rows = scenes.select("item_id", F.coalesce("datetime", "start_datetime").alias("acquired_at"),
                             "geometry").toArrow()
        return rows.cast(pa.schema([("item_id", pa.string()), ("acquired_at", pa.timestamp("us", tz="UTC")),
                                    ("geometry", pa.binary())]))

    def _building_farmland(self, parts: DataFrame) -> DataFrame:
        """Per building: the union of its parts inside farmland, and that union's ellipsoidal area."""
        grouped = parts.groupBy("building_id", "district_code").agg(F.collect_list("part_wkb").alias("parts"))
        schema = pa.schema([("building_id", pa.string()), ("district_code", pa.string()), ("overlap_m2", pa.float64()),
                            ("geometry", pa.binary())])

        def union(batches):
            for batch in batches:
                geoms = geometry.union_parts(batch.column("parts"))
                yield pa.RecordBatch.from_arrays(
                    [batch.column("building_id"), batch.column("district_code"),
                     pa.array(geometry.geodesic_area_m2(geoms), pa.float64()), pa.array(shapely.to_wkb(geoms), pa.binary())],
                    schema=schema)

        return grouped.mapInArrow(union, from_arrow_schema(schema))

    # --- marts ----------------------------------------------------------------------------------------------
    def land_change(self) -> DataFrame:
        return self._save(GOLD_LAND_CHANGE.name, _conform(GOLD_LAND_CHANGE, self.spark.sql(f"""
            with previous as (
                select parcel_id, land_class_code, survey_year from stg_parcels
                where survey_year = (select max(survey_year) from stg_parcels where survey_year < {self.latest_year})
            )
            select latest.parcel_id, latest.district_code, previous.survey_year as from_year,
                   latest.survey_year as to_year, previous.land_class_code as from_class,
                   latest.land_class_code as to_class, from_class.three_category as from_category,
                   latest.three_category as to_category,
                   case
                       when from_class.is_cultivated and latest.is_construction then 'cultivated_to_construction'
                       when from_class.is_forest and not latest.is_forest then 'forest_loss'
                       when not from_class.is_cultivated and latest.is_cultivated then 'to_cultivated'
                       else from_class.three_category || '_to_' || latest.three_category
                   end as change_type,
                   latest.area_m2, latest.geometry, latest.bbox_xmin, latest.bbox_ymin, latest.bbox_xmax,
                   latest.bbox_ymax
            from int_parcels_latest as latest
            inner join previous on latest.parcel_id = previous.parcel_id
            left join int_land_classes as from_class on previous.land_class_code = from_class.land_class_code
            where previous.land_class_code <> latest.land_class_code""")))

    def _parcel_overlaps(self) -> None:
        self.spark.sql("""
            select parcel_id,
                   sum(overlap_m2) filter (where line_type = 'ecological_red_line') as red_line_m2,
                   sum(overlap_m2) filter (where line_type = 'permanent_basic_farmland') as farmland_m2,
                   sum(overlap_m2) filter (where line_type = 'urban_development_boundary') as urban_boundary_m2
            from int_parcel_control_overlap group by parcel_id""").createOrReplaceTempView("parcel_overlaps")

    def control_line_conflicts(self) -> DataFrame:
        self._parcel_overlaps()
        minimum = self._setting("min_conflict_area_m2")
        candidates = self.spark.sql(f"""
            with parcels as (
                select latest.*, coalesce(o.red_line_m2, 0) as red_line_m2, coalesce(o.farmland_m2, 0) as farmland_m2,
                       coalesce(o.urban_boundary_m2, 0) as urban_boundary_m2
                from int_parcels_latest as latest left join parcel_overlaps as o on latest.parcel_id = o.parcel_id
            ),
            candidates as (
                select 'CONFLICT_CONSTRUCTION_IN_RED_LINE' as rule_id, 'ecological_red_line' as line_type,
                       parcel_id, red_line_m2 as area_m2
                from parcels where is_construction and red_line_m2 > {minimum}
                union all
                select 'CONFLICT_NON_FARM_USE_IN_BASIC_FARMLAND', 'permanent_basic_farmland', parcel_id, farmland_m2
                from parcels where not allowed_in_basic_farmland and farmland_m2 > {minimum}
                union all
                select 'CONFLICT_CONSTRUCTION_OUTSIDE_URBAN_BOUNDARY', 'urban_development_boundary', parcel_id,
                       spheroid_area_m2 - urban_boundary_m2
                from parcels where is_construction and spheroid_area_m2 - urban_boundary_m2 > {minimum}
            )
            select c.rule_id, c.parcel_id, c.area_m2, p.district_code, p.land_class_code, p.geometry as parcel_wkb,
                   case when not o.any_covered then o.inside_parts end as inside_parts
            from candidates as c
            inner join parcels as p on c.parcel_id = p.parcel_id
            left join int_parcel_control_overlap as o on c.parcel_id = o.parcel_id and c.line_type = o.line_type""")
        parcel_conflicts = candidates.mapInArrow(_parcel_conflict_rows, from_arrow_schema(_CONFLICT_SCHEMA))
        others = self.spark.sql(f"""
            select 'CONFLICT_BUILDING_IN_BASIC_FARMLAND' as rule_id, cast(null as string) as parcel_id,
                   building_id, district_code, cast(null as string) as land_class_code, overlap_m2 as area_m2, geometry
            from int_building_farmland where overlap_m2 > {minimum}
            union all
            select 'CONFLICT_CULTIVATED_TO_CONSTRUCTION', parcel_id, cast(null as string), district_code, to_class,
                   area_m2, geometry
            from land_change where change_type = 'cultivated_to_construction'""")
        others = others.mapInArrow(_bbox_rows, from_arrow_schema(_CONFLICT_SCHEMA))
        conflicts = parcel_conflicts.unionByName(others).withColumn(
            "conflict_id", F.concat_ws(":", "rule_id", F.coalesce("parcel_id", "building_id"))).withColumn(
            "severity", F.when(F.col("rule_id") == "CONFLICT_CONSTRUCTION_OUTSIDE_URBAN_BOUNDARY", "warn")
            .otherwise("error"))
        return self._save(GOLD_CONFLICTS.name, _conform(GOLD_CONFLICTS, conflicts))

    def one_map_parcels(self) -> DataFrame:
        return self._save(GOLD_ONE_MAP_PARCELS.name, _conform(GOLD_ONE_MAP_PARCELS, self.spark.sql("""
            with conflicts as (
                select parcel_id, array_join(array_sort(collect_list(rule_id)), ',') as conflict_rules
                from control_line_conflicts where parcel_id is not null group by parcel_id
            )
            select p.parcel_id, p.survey_year, p.district_code, p.land_class_code, p.land_class_name,
                   p.land_class_name_en, p.group_code, p.group_name, p.three_category, p.is_construction,
                   p.is_cultivated, p.urban_rural_code, p.area_m2, p.net_area_m2,
                   coalesce(o.red_line_m2, 0) as ecological_red_line_m2,
                   coalesce(o.farmland_m2, 0) as permanent_basic_farmland_m2,
                   coalesce(o.urban_boundary_m2, 0) as urban_development_boundary_m2,
                   coalesce(b.building_count, 0) as building_count,
                   coalesce(b.building_footprint_m2, 0) as building_footprint_m2,
                   s.latest_scene_id, s.latest_scene_datetime,
                   coalesce(h.hazards_within_200m, 0) as hazards_within_200m,
                   coalesce(c.conflict_rules, '') as conflict_rules,
                   p.geometry, p.bbox_xmin, p.bbox_ymin, p.bbox_xmax, p.bbox_ymax
            from int_parcels_latest as p
            left join parcel_overlaps as o on p.parcel_id = o.parcel_id
            left join int_parcel_buildings as b on p.parcel_id = b.parcel_id
            left join int_parcel_scenes as s on p.parcel_id = s.parcel_id
            left join int_parcel_hazards as h on p.parcel_id = h.parcel_id
            left join conflicts as c on p.parcel_id = c.parcel_id""")))

    def district_indicators(self) -> DataFrame:
        """district_indicators.sql in Spark SQL (the heavy part is the per-district sums over the parcels)."""
        margin = self._setting("at_risk_margin")
        indicators = ["development_intensity", "cultivated_land_area", "permanent_basic_farmland_area",
                      "ecological_red_line_area", "urban_rural_construction_land", "forest_cover"]
        pivot = ",\n".join(
            f"any_value(value) filter (where indicator_id = '{i}') as {i}, "
            f"any_value(target) filter (where indicator_id = '{i}') as {i}_target, "
            f"any_value(status) filter (where indicator_id = '{i}') as {i}_status" for i in indicators)
        return self._save(GOLD_DISTRICT_INDICATORS.name, _conform(GOLD_DISTRICT_INDICATORS, self.spark.sql(f"""
            with parcels as (
                select district_code, sum(area_m2) as land_m2,
                       sum(area_m2) filter (where is_construction) as construction_m2,
                       sum(net_area_m2) filter (where is_cultivated) as cultivated_m2,
                       sum(area_m2) filter (where is_construction and urban_rural_code in ('201', '202', '203'))
                           as urban_rural_m2,
                       sum(area_m2) filter (where land_class_code in ('0301', '0302', '0305', '0307')) as forest_m2
                from one_map_parcels group by district_code
            ),
            baseline_parcels as (
                select p.district_code, sum(p.net_area_m2) filter (where c.is_cultivated) as cultivated_m2,
                       sum(p.area_m2) filter (where c.is_construction and p.urban_rural_code in ('201', '202', '203'))
                           as urban_rural_m2
                from stg_parcels as p inner join int_land_classes as c on p.land_class_code = c.land_class_code
                where p.survey_year = (select min(survey_year) from stg_parcels)
                group by p.district_code
            ),
            lines as (
                select district_code,
                       sum(area_m2) filter (where line_type = 'permanent_basic_farmland') as farmland_m2,
                       sum(area_m2) filter (where line_type = 'ecological_red_line') as red_line_m2
                from stg_control_lines group by district_code
            ),
            per_district as (
                select d.district_code, d.name as district_name, coalesce(p.land_m2, 0) as land_m2,
                       coalesce(p.construction_m2, 0) as construction_m2, coalesce(p.cultivated_m2, 0) as cultivated_m2,
                       coalesce(l.farmland_m2, 0) as farmland_m2, coalesce(l.red_line_m2, 0) as red_line_m2,
                       coalesce(p.urban_rural_m2, 0) as urban_rural_m2, coalesce(p.forest_m2, 0) as forest_m2,
                       coalesce(b.cultivated_m2, 0) as base_cultivated_m2,
                       coalesce(b.urban_rural_m2, 0) as base_urban_rural_m2
                from stg_districts as d
                left join parcels as p on d.district_code = p.district_code
                left join lines as l on d.district_code = l.district_code
                left join baseline_parcels as b on d.district_code = b.district_code
            ),
            with_region as (
                select * from per_district
                union all
                select '500000', '重庆市', sum(land_m2), sum(construction_m2), sum(cultivated_m2), sum(farmland_m2),
                       sum(red_line_m2), sum(urban_rural_m2), sum(forest_m2), sum(base_cultivated_m2),
                       sum(base_urban_rural_m2)
                from per_district
            ),
            long as (
                select a.district_code, a.district_name, d.indicator_id,
                       case d.indicator_id
                           when 'development_intensity' then 100 * a.construction_m2 / nullif(a.land_m2, 0)
                           when 'forest_cover' then 100 * a.forest_m2 / nullif(a.land_m2, 0)
                           when 'cultivated_land_area' then a.cultivated_m2 / d.m2_per_unit
                           when 'permanent_basic_farmland_area' then a.farmland_m2 / d.m2_per_unit
                           when 'ecological_red_line_area' then a.red_line_m2 / d.m2_per_unit
                           when 'urban_rural_construction_land' then a.urban_rural_m2 / d.m2_per_unit
                       end as value,
                       case d.indicator_id
                           when 'cultivated_land_area' then a.base_cultivated_m2
                           when 'permanent_basic_farmland_area' then a.farmland_m2
                           when 'ecological_red_line_area' then a.red_line_m2
                           when 'urban_rural_construction_land' then a.base_urban_rural_m2
                       end as baseline_m2,
                       d.district_target
                from with_region as a cross join indicator_definitions as d
            ),
            region_baseline as (select indicator_id, baseline_m2 from long where district_code = '500000'),
            judged as (
                select l.district_code, l.district_name, l.indicator_id, l.value,
                       case when l.district_code = '500000' or l.district_target = 'same' then t.target_2025
                            else t.target_2025 * l.baseline_m2 / nullif(r.baseline_m2, 0) end as target,
                       t.direction
                from long as l
                inner join plan_targets as t on l.indicator_id = t.indicator_id
                left join region_baseline as r on l.indicator_id = r.indicator_id
            ),
            statused as (
                select *, case
                    when value is null or target is null then 'unknown'
                    when direction = 'max' and value <= target * (1 - {margin}) then 'met'
                    when direction = 'max' and value <= target then 'at risk'
                    when direction = 'min' and value >= target * (1 + {margin}) then 'met'
                    when direction = 'min' and value >= target then 'at risk'
                    else 'breached' end as status
                from judged
            )
            select district_code, any_value(district_name) as district_name,
                   {self.latest_year} as survey_year,
                   {pivot}
            from statused group by district_code order by district_code""")))


_CONFLICT_SCHEMA = pa.schema([("rule_id", pa.string()), ("parcel_id", pa.string()), ("building_id", pa.string()),
                              ("district_code", pa.string()), ("land_class_code", pa.string()),
                              ("area_m2", pa.float64()), ("geometry", pa.binary()), ("bbox_xmin", pa.float64()),
                              ("bbox_ymin", pa.float64()), ("bbox_xmax", pa.float64()), ("bbox_ymax", pa.float64())])


def _parcel_conflict_rows(batches):
    """A parcel conflict's geometry: the parcel when it lies wholly inside the line (no parts), else the union
    of its parts inside — or, for construction outside the urban boundary, the parcel minus that union."""
    for batch in batches:
        parcels = shapely.from_wkb(batch.column("parcel_wkb").to_numpy(zero_copy_only=False))
        inside = geometry.union_parts(batch.column("inside_parts"))
        rules = batch.column("rule_id").to_numpy(zero_copy_only=False)
        geoms = parcels.copy()
        has_part = ~shapely.is_missing(inside)
        outside = has_part & (rules == "CONFLICT_CONSTRUCTION_OUTSIDE_URBAN_BOUNDARY")
        geoms[has_part & ~outside] = inside[has_part & ~outside]
        if outside.any():
            geoms[outside] = geometry.polygonal(shapely.difference(parcels[outside], inside[outside]))
        yield _conflict_batch(batch, geoms, building=pa.nulls(batch.num_rows, pa.string()))


def _bbox_rows(batches):
    for batch in batches:
        geoms = shapely.from_wkb(batch.column("geometry").to_numpy(zero_copy_only=False))
        yield _conflict_batch(batch, geoms, building=batch.column("building_id"))


def _conflict_batch(batch: pa.RecordBatch, geoms: np.ndarray, building: pa.Array) -> pa.RecordBatch:
    spatial = geometry.with_bbox(geoms)
    return pa.RecordBatch.from_pydict({
        "rule_id": batch.column("rule_id"), "parcel_id": batch.column("parcel_id"), "building_id": building,
        "district_code": batch.column("district_code"), "land_class_code": batch.column("land_class_code"),
        "area_m2": batch.column("area_m2"), **spatial}, schema=_CONFLICT_SCHEMA)


def _arrow_type(spark_type) -> pa.DataType:
    from pyspark.sql.pandas.types import to_arrow_type

    return to_arrow_type(spark_type)


def _conform(spec: TableSpec, frame: DataFrame) -> DataFrame:
    """The gold table's columns in registry order and types."""
    schema = from_arrow_schema(spec.schema)
    return frame.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])
