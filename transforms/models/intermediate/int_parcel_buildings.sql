-- Buildings per latest-year parcel: a building belongs to the parcel holding its footprint's interior point.
select
    parcels.parcel_id,
    parcels.district_code,
    count(*) as building_count,
    sum({{ ellipsoidal_area('buildings.geom') }}) as building_footprint_m2
from {{ rebuilt_rows(ref('int_parcels_latest')) }} as parcels
inner join {{ ref('stg_buildings') }} as buildings
    on st_intersects(parcels.geom, st_pointonsurface(buildings.geom))
group by parcels.parcel_id, parcels.district_code
