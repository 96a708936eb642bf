-- Buildings overlapping permanent basic farmland, with the overlap geometry and its ellipsoidal area.
with farmland_overlaps as (
    select
        buildings.building_id,
        buildings.district_code,
        st_union_agg(st_collectionextract(st_intersection(buildings.geom, pieces.geom), 3)) as geom
    from {{ rebuilt_rows(ref('stg_buildings')) }} as buildings
    inner join {{ ref('int_control_pieces') }} as pieces
        on st_intersects(buildings.geom, pieces.geom)
    where pieces.line_type = 'permanent_basic_farmland'
    group by buildings.building_id, buildings.district_code
)

select
    building_id,
    district_code,
    geom,
    {{ ellipsoidal_area('geom') }} as overlap_m2
from farmland_overlaps
