-- Hazard points within hazard_radius_m of each latest-year parcel. A 0.005° box pre-filters (over 400 m here);
-- the exact distance is measured in the CGCS2000 Gauss–Krüger zone 36 (EPSG:4545) plane.
select
    parcels.parcel_id,
    parcels.district_code,
    count(*) as hazards_within_200m
from {{ rebuilt_rows(ref('int_parcels_latest')) }} as parcels
inner join {{ ref('stg_hazard_points') }} as hazards
    on st_dwithin(parcels.geom, hazards.geom, 0.005)
where
    st_distance(
        st_transform(parcels.geom, 'EPSG:4490', 'EPSG:4545', always_xy := true),
        st_transform(hazards.geom, 'EPSG:4490', 'EPSG:4545', always_xy := true)
    ) <= {{ setting('hazard_radius_m') }}
group by parcels.parcel_id, parcels.district_code
