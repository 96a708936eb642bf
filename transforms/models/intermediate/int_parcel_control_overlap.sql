-- Ellipsoidal overlap (m²) of each latest-year parcel with each control-line type. A parcel covered by a piece
-- takes its own area; only parcels crossing a piece edge pay for an intersection, whose union is kept as
-- inside_geom (null when the parcel is covered, or when no conflict rule can use it) so the conflicts need no
-- second overlay.
with pairs as (
    select
        parcels.parcel_id,
        parcels.district_code,
        pieces.line_type,
        parcels.spheroid_area_m2,
        (pieces.line_type = 'permanent_basic_farmland' and not parcels.allowed_in_basic_farmland)
        or (pieces.line_type <> 'permanent_basic_farmland' and parcels.is_construction) as may_conflict,
        st_covers(pieces.geom, parcels.geom) as covered,
        parcels.geom as parcel_geom,
        pieces.geom as piece_geom
    from {{ rebuilt_rows(ref('int_parcels_latest')) }} as parcels
    inner join {{ ref('int_control_pieces') }} as pieces
        on st_intersects(parcels.geom, pieces.geom)
),

measured as (
    select
        parcel_id,
        district_code,
        line_type,
        covered,
        may_conflict,
        spheroid_area_m2,
        case
            when not covered then st_collectionextract(st_intersection(parcel_geom, piece_geom), 3)
        end as inside_part
    from pairs
)

select
    parcel_id,
    district_code,
    line_type,
    sum(case when covered then spheroid_area_m2 else {{ ellipsoidal_area('inside_part') }} end) as overlap_m2,
    case when not bool_or(covered) then st_union_agg(inside_part) filter (where may_conflict) end as inside_geom
from measured
group by parcel_id, district_code, line_type
