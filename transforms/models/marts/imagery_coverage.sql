{{ config(materialized='table') }}

-- Per district and month: scenes, usable (cloud cover at most max_cloud_cover) scenes, and the share of the
-- district's area covered by the union of usable footprints. Empty while the catalog holds no imagery.
with hits as (
    select
        districts.district_code,
        strftime(scenes.acquired_at, '%Y-%m') as month,
        scenes.cloud_cover <= {{ setting('max_cloud_cover') }} as usable,
        scenes.geom,
        districts.geom as district_geom,
        districts.area_m2 as district_m2
    from {{ ref('stg_stac_items') }} as scenes
    inner join {{ ref('stg_districts') }} as districts on st_intersects(scenes.geom, districts.geom)
    where scenes.acquired_at is not null
),

monthly as (
    select
        district_code,
        month,
        count(*) as scenes,
        count(*) filter (where usable) as cloud_free_scenes,
        st_union_agg(geom) filter (where usable) as usable_geom,
        any_value(district_geom) as district_geom,
        any_value(district_m2) as district_m2
    from hits
    group by district_code, month
)

select
    district_code,
    month,
    scenes,
    cloud_free_scenes,
    coalesce(
        {{ ellipsoidal_area("st_collectionextract(st_intersection(usable_geom, district_geom), 3)") }}
        / nullif(district_m2, 0),
        0
    ) as cloud_free_coverage
from monthly
order by district_code, month
