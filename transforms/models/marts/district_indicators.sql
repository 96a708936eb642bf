{{ config(materialized='table') }}

-- Plan indicators per district and for the region (500000), each beside its 2025 target and a status.
-- Formulas: seeds/indicator_definitions.csv and marts.yml. Region targets come from plan_targets; a district's
-- target is the region target for shares (percent), and for areas the region target times the district's share
-- of the region's value in the earliest survey year (lines: their current area).
with parcels as (
    select
        district_code,
        sum(area_m2) as land_m2,
        sum(area_m2) filter (where is_construction) as construction_m2,
        sum(net_area_m2) filter (where is_cultivated) as cultivated_m2,
        sum(area_m2) filter (where is_construction and urban_rural_code in ('201', '202', '203')) as urban_rural_m2,
        sum(area_m2) filter (where land_class_code in ('0301', '0302', '0305', '0307')) as forest_m2
    from {{ ref('one_map_parcels') }}
    group by district_code
),

baseline_parcels as (
    select
        parcels.district_code,
        sum(parcels.net_area_m2) filter (where classes.is_cultivated) as cultivated_m2,
        sum(parcels.area_m2) filter (
            where classes.is_construction and parcels.urban_rural_code in ('201', '202', '203')
        ) as urban_rural_m2
    from {{ ref('stg_parcels') }} as parcels
    inner join {{ ref('int_land_classes') }} as classes on parcels.land_class_code = classes.land_class_code
    where parcels.survey_year = (select min(survey_year) from {{ ref('stg_parcels') }})
    group by parcels.district_code
),

lines as (
    select
        district_code,
        sum(area_m2) filter (where line_type = 'permanent_basic_farmland') as farmland_m2,
        sum(area_m2) filter (where line_type = 'ecological_red_line') as red_line_m2
    from {{ ref('stg_control_lines') }}
    group by district_code
),

per_district as (
    select
        districts.district_code,
        districts.district_name,
        coalesce(parcels.land_m2, 0) as land_m2,
        coalesce(parcels.construction_m2, 0) as construction_m2,
        coalesce(parcels.cultivated_m2, 0) as cultivated_m2,
        coalesce(lines.farmland_m2, 0) as farmland_m2,
        coalesce(lines.red_line_m2, 0) as red_line_m2,
        coalesce(parcels.urban_rural_m2, 0) as urban_rural_m2,
        coalesce(parcels.forest_m2, 0) as forest_m2,
        coalesce(baseline_parcels.cultivated_m2, 0) as base_cultivated_m2,
        coalesce(baseline_parcels.urban_rural_m2, 0) as base_urban_rural_m2
    from {{ ref('stg_districts') }} as districts
    left join parcels on districts.district_code = parcels.district_code
    left join lines on districts.district_code = lines.district_code
    left join baseline_parcels on districts.district_code = baseline_parcels.district_code
),

with_region as (
    select * from per_district
    union all
    select
        '500000' as district_code,
        '重庆市' as district_name,
        sum(land_m2) as land_m2,
        sum(construction_m2) as construction_m2,
        sum(cultivated_m2) as cultivated_m2,
        sum(farmland_m2) as farmland_m2,
        sum(red_line_m2) as red_line_m2,
        sum(urban_rural_m2) as urban_rural_m2,
        sum(forest_m2) as forest_m2,
        sum(base_cultivated_m2) as base_cultivated_m2,
        sum(base_urban_rural_m2) as base_urban_rural_m2
    from per_district
),

-- Long form: one row per (district, indicator) with the value in the target's unit and the baseline share.
long as (
    select
        areas.district_code,
        areas.district_name,
        definition.indicator_id,
        case definition.indicator_id
            when 'development_intensity' then 100 * areas.construction_m2 / nullif(areas.land_m2, 0)
            when 'forest_cover' then 100 * areas.forest_m2 / nullif(areas.land_m2, 0)
            when 'cultivated_land_area' then areas.cultivated_m2 / definition.m2_per_unit
            when 'permanent_basic_farmland_area' then areas.farmland_m2 / definition.m2_per_unit
            when 'ecological_red_line_area' then areas.red_line_m2 / definition.m2_per_unit
            when 'urban_rural_construction_land' then areas.urban_rural_m2 / definition.m2_per_unit
        end as value,
        case definition.indicator_id
            when 'cultivated_land_area' then areas.base_cultivated_m2
            when 'permanent_basic_farmland_area' then areas.farmland_m2
            when 'ecological_red_line_area' then areas.red_line_m2
            when 'urban_rural_construction_land' then areas.base_urban_rural_m2
        end as baseline_m2,
        definition.district_target
    from with_region as areas
    cross join {{ ref('indicator_definitions') }} as definition
),

region_baseline as (
    select
        indicator_id,
        baseline_m2
    from long
    where district_code = '500000'
),

judged as (
    select
        long.district_code,
        long.district_name,
        long.indicator_id,
        long.value,
        case
            when long.district_code = '500000' or long.district_target = 'same' then targets.target_2025
            else targets.target_2025 * long.baseline_m2 / nullif(region_baseline.baseline_m2, 0)
        end as target,
        targets.direction
    from long
    inner join {{ ref('plan_targets') }} as targets on long.indicator_id = targets.indicator_id
    left join region_baseline on long.indicator_id = region_baseline.indicator_id
),

statused as (
    select
        *,
        case
            when value is null or target is null then 'unknown'
            when direction = 'max' and value <= target * (1 - {{ setting('at_risk_margin') }}) then 'met'
            when direction = 'max' and value <= target then 'at risk'
            when direction = 'min' and value >= target * (1 + {{ setting('at_risk_margin') }}) then 'met'
            when direction = 'min' and value >= target then 'at risk'
            else 'breached'
        end as status
    from judged
)

select
    district_code,
    any_value(district_name) as district_name,
    (select max(survey_year) from {{ ref('stg_parcels') }}) as survey_year,
    {%- for indicator in ['development_intensity', 'cultivated_land_area', 'permanent_basic_farmland_area',
                          'ecological_red_line_area', 'urban_rural_construction_land', 'forest_cover'] %}
        any_value(value) filter (where indicator_id = '{{ indicator }}') as {{ indicator }},
        any_value(target) filter (where indicator_id = '{{ indicator }}') as {{ indicator }}_target,
        any_value(status) filter (where indicator_id = '{{ indicator }}') as {{ indicator }}_status
        {%- if not loop.last %},{% endif %}
    {%- endfor %}
from statused
group by district_code
order by district_code
