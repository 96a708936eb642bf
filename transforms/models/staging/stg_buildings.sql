select
    building_id,
    district_code,
    height_m,
    storeys,
    st_geomfromwkb(geometry) as geom
from {{ source('silver', 'buildings') }}
