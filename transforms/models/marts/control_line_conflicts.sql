-- One row per conflict between land use and a control line. Rules and severities in marts.yml.
with parcels as (
    select
        latest.*,
        coalesce(overlap.ecological_red_line_m2, 0) as red_line_m2,
        coalesce(overlap.permanent_basic_farmland_m2, 0) as farmland_m2,
        coalesce(overlap.urban_development_boundary_m2, 0) as urban_boundary_m2
    from {{ ref('int_parcels_latest') }} as latest
    left join {{ ref('int_parcel_line_areas') }} as overlap on latest.parcel_id = overlap.parcel_id
    where {{ district_filter('latest.district_code') }}
),

candidates as (
    select
        'CONFLICT_CONSTRUCTION_IN_RED_LINE' as rule_id,
        'error' as severity,
        'ecological_red_line' as line_type,
        parcel_id,
        red_line_m2 as area_m2
    from parcels
    where is_construction and red_line_m2 > {{ setting('min_conflict_area_m2') }}
    union all
    select
        'CONFLICT_NON_FARM_USE_IN_BASIC_FARMLAND' as rule_id,
        'error' as severity,
        'permanent_basic_farmland' as line_type,
        parcel_id,
        farmland_m2 as area_m2
    from parcels
    where not allowed_in_basic_farmland and farmland_m2 > {{ setting('min_conflict_area_m2') }}
    union all
    select
        'CONFLICT_CONSTRUCTION_OUTSIDE_URBAN_BOUNDARY' as rule_id,
        'warn' as severity,
        'urban_development_boundary' as line_type,
        parcel_id,
        spheroid_area_m2 - urban_boundary_m2 as area_m2
    from parcels
    where is_construction and spheroid_area_m2 - urban_boundary_m2 > {{ setting('min_conflict_area_m2') }}
),

-- The part of the parcel inside the line (from the overlay); null when the parcel lies wholly inside.
partial as (
    select
        candidates.rule_id,
        candidates.parcel_id,
        overlap.inside_geom
    from candidates
    inner join {{ ref('int_parcel_control_overlap') }} as overlap
        on candidates.parcel_id = overlap.parcel_id and candidates.line_type = overlap.line_type
    where overlap.inside_geom is not null
),

parcel_conflicts as (
    select
        candidates.rule_id || ':' || candidates.parcel_id as conflict_id,
        candidates.rule_id,
        candidates.severity,
        parcels.district_code,
        candidates.parcel_id,
        cast(null as varchar) as building_id,
        parcels.land_class_code,
        candidates.area_m2,
        case
            when partial.inside_geom is null then parcels.geom
            when candidates.rule_id = 'CONFLICT_CONSTRUCTION_OUTSIDE_URBAN_BOUNDARY'
                then st_collectionextract(st_difference(parcels.geom, partial.inside_geom), 3)
            else partial.inside_geom
        end as geom
    from candidates
    inner join parcels on candidates.parcel_id = parcels.parcel_id
    left join partial
        on candidates.rule_id = partial.rule_id and candidates.parcel_id = partial.parcel_id
),

building_conflicts as (
    select
        'CONFLICT_BUILDING_IN_BASIC_FARMLAND:' || building_id as conflict_id,
        'CONFLICT_BUILDING_IN_BASIC_FARMLAND' as rule_id,
        'error' as severity,
        district_code,
        cast(null as varchar) as parcel_id,
        building_id,
        cast(null as varchar) as land_class_code,
        overlap_m2 as area_m2,
        geom
    from {{ ref('int_building_farmland') }}
    where overlap_m2 > {{ setting('min_conflict_area_m2') }} and {{ district_filter('district_code') }}
),

change_conflicts as (
    select
        'CONFLICT_CULTIVATED_TO_CONSTRUCTION:' || changes.parcel_id as conflict_id,
        'CONFLICT_CULTIVATED_TO_CONSTRUCTION' as rule_id,
        'error' as severity,
        changes.district_code,
        changes.parcel_id,
        cast(null as varchar) as building_id,
        changes.to_class as land_class_code,
        changes.area_m2,
        st_geomfromwkb(changes.geometry) as geom
    from {{ ref('land_change') }} as changes
    where changes.change_type = 'cultivated_to_construction' and {{ district_filter('changes.district_code') }}
),

all_conflicts as (
    select * from parcel_conflicts
    union all
    select * from building_conflicts
    union all
    select * from change_conflicts
)

select
    conflict_id,
    rule_id,
    severity,
    district_code,
    parcel_id,
    building_id,
    land_class_code,
    area_m2,
    st_aswkb(geom) as geometry,
    st_xmin(geom) as bbox_xmin,
    st_ymin(geom) as bbox_ymin,
    st_xmax(geom) as bbox_xmax,
    st_ymax(geom) as bbox_ymax
from all_conflicts
