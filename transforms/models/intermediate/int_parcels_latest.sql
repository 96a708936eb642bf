-- Parcels of the latest survey year with their land class; the overlay and the marts start here.
-- spheroid_area_m2 is the parcel's area by the same method as the overlaps, so differences of the two are exact.
select
    parcels.parcel_id,
    parcels.survey_year,
    parcels.district_code,
    parcels.land_class_code,
    classes.land_class_name,
    classes.land_class_name_en,
    classes.group_code,
    classes.group_name,
    classes.three_category,
    classes.is_construction,
    classes.is_cultivated,
    classes.is_forest,
    classes.allowed_in_basic_farmland,
    parcels.urban_rural_code,
    parcels.area_m2,
    {{ ellipsoidal_area('parcels.geom') }} as spheroid_area_m2,
    parcels.net_area_m2,
    parcels.geom
from {{ ref('stg_parcels') }} as parcels
left join {{ ref('int_land_classes') }} as classes
    on parcels.land_class_code = classes.land_class_code
where
    parcels.survey_year = (select max(survey_year) from {{ ref('stg_parcels') }})
    and {{ district_filter('parcels.district_code') }}
