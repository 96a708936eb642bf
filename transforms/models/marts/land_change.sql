-- Land-class transitions of each parcel between the two latest survey years (parcels keep their id, BSM,
-- across surveys). Area is the parcel's latest ellipsoidal area.
with years as (
    select
        max(survey_year) as to_year,
        max(survey_year) filter (where survey_year < (select max(survey_year) from {{ ref('stg_parcels') }}))
            as from_year
    from {{ ref('stg_parcels') }}
),

previous as (
    select
        parcels.parcel_id,
        parcels.land_class_code,
        parcels.survey_year
    from {{ ref('stg_parcels') }} as parcels
    where
        parcels.survey_year = (select from_year from years)
        and {{ district_filter('parcels.district_code') }}
)

select
    latest.parcel_id,
    latest.district_code,
    previous.survey_year as from_year,
    latest.survey_year as to_year,
    previous.land_class_code as from_class,
    latest.land_class_code as to_class,
    from_class.three_category as from_category,
    latest.three_category as to_category,
    case
        when from_class.is_cultivated and latest.is_construction then 'cultivated_to_construction'
        when from_class.is_forest and not latest.is_forest then 'forest_loss'
        when not from_class.is_cultivated and latest.is_cultivated then 'to_cultivated'
        else from_class.three_category || '_to_' || latest.three_category
    end as change_type,
    latest.area_m2,
    st_aswkb(latest.geom) as geometry,
    st_xmin(latest.geom) as bbox_xmin,
    st_ymin(latest.geom) as bbox_ymin,
    st_xmax(latest.geom) as bbox_xmax,
    st_ymax(latest.geom) as bbox_ymax
from {{ ref('int_parcels_latest') }} as latest
inner join previous
    on latest.parcel_id = previous.parcel_id
left join {{ ref('int_land_classes') }} as from_class
    on previous.land_class_code = from_class.land_class_code
where
    previous.land_class_code <> latest.land_class_code
    and {{ district_filter('latest.district_code') }}
