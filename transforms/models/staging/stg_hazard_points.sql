select
    hazard_id,
    hazard_type,
    district_code,
    st_geomfromwkb(geometry) as geom
from {{ source('silver', 'hazard_points') }}
