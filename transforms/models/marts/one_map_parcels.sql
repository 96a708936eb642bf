-- One row per parcel of the latest survey year: land class, control-line overlaps, buildings, imagery, hazards,
-- conflicts.
with conflicts as (
    select
        parcel_id,
        string_agg(rule_id, ',' order by rule_id) as conflict_rules
    from {{ ref('control_line_conflicts') }}
    where parcel_id is not null and {{ district_filter('district_code') }}
    group by parcel_id
)

select
    parcels.parcel_id,
    parcels.survey_year,
    parcels.district_code,
    parcels.land_class_code,
    parcels.land_class_name,
    parcels.land_class_name_en,
    parcels.group_code,
    parcels.group_name,
    parcels.three_category,
    parcels.is_construction,
    parcels.is_cultivated,
    parcels.urban_rural_code,
    parcels.area_m2,
    parcels.net_area_m2,
    coalesce(overlap.ecological_red_line_m2, 0) as ecological_red_line_m2,
    coalesce(overlap.permanent_basic_farmland_m2, 0) as permanent_basic_farmland_m2,
    coalesce(overlap.urban_development_boundary_m2, 0) as urban_development_boundary_m2,
    coalesce(buildings.building_count, 0) as building_count,
    coalesce(buildings.building_footprint_m2, 0) as building_footprint_m2,
    scenes.latest_scene_id,
    scenes.latest_scene_datetime,
    coalesce(hazards.hazards_within_200m, 0) as hazards_within_200m,
    coalesce(conflicts.conflict_rules, '') as conflict_rules,
    st_aswkb(parcels.geom) as geometry,
    st_xmin(parcels.geom) as bbox_xmin,
    st_ymin(parcels.geom) as bbox_ymin,
    st_xmax(parcels.geom) as bbox_xmax,
    st_ymax(parcels.geom) as bbox_ymax
from {{ ref('int_parcels_latest') }} as parcels
left join {{ ref('int_parcel_line_areas') }} as overlap on parcels.parcel_id = overlap.parcel_id
left join {{ ref('int_parcel_buildings') }} as buildings on parcels.parcel_id = buildings.parcel_id
left join {{ ref('int_parcel_scenes') }} as scenes on parcels.parcel_id = scenes.parcel_id
left join {{ ref('int_parcel_hazards') }} as hazards on parcels.parcel_id = hazards.parcel_id
left join conflicts on parcels.parcel_id = conflicts.parcel_id
where {{ district_filter('parcels.district_code') }}
