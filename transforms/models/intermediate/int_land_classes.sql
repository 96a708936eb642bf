{{ config(materialized='table') }}

-- The land-class dictionary with the rule flags the marts use; 1103 reservoir water per rule_settings.
select
    code as land_class_code,
    name_zh as land_class_name,
    name_en as land_class_name_en,
    group_code,
    group_name_zh as group_name,
    three_category,
    is_cultivated,
    is_forest,
    allowed_in_basic_farmland,
    (three_category = 'construction' and (code <> '1103' or {{ setting('reservoir_water_is_construction', 'boolean') }}))
        as is_construction
from {{ ref('land_classes') }}
