select
    district_code,
    name as district_name,
    area_m2,
    st_geomfromwkb(geometry) as geom
from {{ source('silver', 'districts') }}
