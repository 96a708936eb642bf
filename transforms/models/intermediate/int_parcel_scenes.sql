-- The latest usable (cloud cover at most max_cloud_cover) imagery scene over each latest-year parcel.
select
    parcels.parcel_id,
    parcels.district_code,
    arg_max(scenes.item_id, scenes.acquired_at) as latest_scene_id,
    max(scenes.acquired_at) as latest_scene_datetime
from {{ rebuilt_rows(ref('int_parcels_latest')) }} as parcels
inner join {{ ref('stg_stac_items') }} as scenes
    on st_intersects(scenes.geom, st_pointonsurface(parcels.geom))
where scenes.cloud_cover <= {{ setting('max_cloud_cover') }}
group by parcels.parcel_id, parcels.district_code
