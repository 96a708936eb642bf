select
    parcel_id,
    survey_year,
    district_code,
    land_class_code,
    urban_rural_code,
    area_m2,
    net_area_m2,
    st_geomfromwkb(geometry) as geom
from {{ source('silver', 'parcels') }}
