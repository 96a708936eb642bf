-- Per latest-year parcel: its ellipsoidal overlap (m²) with each of the three control-line types, one column
-- each (the pivot both one_map_parcels and control_line_conflicts read).
select
    parcel_id,
    district_code,
    sum(overlap_m2) filter (where line_type = 'ecological_red_line') as ecological_red_line_m2,
    sum(overlap_m2) filter (where line_type = 'permanent_basic_farmland') as permanent_basic_farmland_m2,
    sum(overlap_m2) filter (where line_type = 'urban_development_boundary') as urban_development_boundary_m2
from {{ ref('int_parcel_control_overlap') }}
where {{ district_filter('district_code') }}
group by parcel_id, district_code
