select
    collection,
    item_id,
    cloud_cover,
    coalesce(datetime, start_datetime) as acquired_at,
    st_geomfromwkb(geometry) as geom
from {{ source('silver', 'stac_items') }}
