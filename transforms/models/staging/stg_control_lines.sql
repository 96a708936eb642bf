select
    line_id,
    line_type,
    district_code,
    area_m2,
    st_geomfromwkb(geometry) as geom
from {{ source('silver', 'control_lines') }}
