{# Helpers shared by the one-map models. #}

{% macro ellipsoidal_area(geom) -%}
    {#- Area in m² on the ellipsoid. DuckDB's ST_Area_Spheroid reads latitude first, so flip lon/lat first. -#}
    st_area_spheroid(st_flipcoordinates({{ geom }}))
{%- endmacro %}

{% macro district_filter(column) -%}
    {#-
        Rows of the districts being rebuilt: on an incremental run, those listed in the build database's
        rebuild_districts table (written by lake.transforms_project before each build, so the SQL and the vars
        stay the same and dbt keeps partial parsing); every row on a whole-region (full-refresh) build.
    -#}
    {%- if is_incremental() -%}
        {{ column }} in (select rebuild_districts.district_code from main.rebuild_districts)
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{% macro rebuilt_rows(relation, column='district_code') -%}
    {#-
        `relation`'s rows of the districts being rebuilt, as a subquery to join from. A spatial join must read
        this, not filter by district_filter after joining: DuckDB keeps that filter above its SPATIAL_JOIN, so an
        incremental build would join the whole region (measured at 1M parcels: 1.9 s instead of 0.1 s).
    -#}
    (select * from {{ relation }} where {{ district_filter(column) }})
{%- endmacro %}

{% macro delete_rebuilt_districts() -%}
    {#- Pre-hook of the incremental models: drop the rebuilt districts' rows, the model appends them again. -#}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ district_filter('district_code') }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{% macro setting(name, type='double') -%}
    (select cast(value as {{ type }}) from {{ ref('rule_settings') }} where setting = '{{ name }}')
{%- endmacro %}

{% macro split_polygons(relation, max_vertices, max_depth=16) -%}
    {#-
        Quadtree split of polygons into pieces of at most `max_vertices` vertices (DuckDB 1.5.5 has no
        ST_Subdivide). A piece with more vertices is cut by the four quadrants of its bounding box, recursively;
        pieces partition the polygon, so overlap areas summed over pieces equal overlaps with the whole.
    -#}
    with recursive pieces (line_id, line_type, district_code, geom, depth) as (
        select
            line_id,
            line_type,
            district_code,
            geom,
            0
        from {{ relation }}
        union all
        select
            pieces.line_id,
            pieces.line_type,
            pieces.district_code,
            st_collectionextract(st_intersection(pieces.geom, quadrant.cell), 3),
            pieces.depth + 1
        from pieces
        cross join lateral (
            select
                unnest([
                    st_makeenvelope(st_xmin(pieces.geom), st_ymin(pieces.geom), (st_xmin(pieces.geom) + st_xmax(pieces.geom)) / 2, (st_ymin(pieces.geom) + st_ymax(pieces.geom)) / 2),
                    st_makeenvelope((st_xmin(pieces.geom) + st_xmax(pieces.geom)) / 2, st_ymin(pieces.geom), st_xmax(pieces.geom), (st_ymin(pieces.geom) + st_ymax(pieces.geom)) / 2),
                    st_makeenvelope(st_xmin(pieces.geom), (st_ymin(pieces.geom) + st_ymax(pieces.geom)) / 2, (st_xmin(pieces.geom) + st_xmax(pieces.geom)) / 2, st_ymax(pieces.geom)),
                    st_makeenvelope((st_xmin(pieces.geom) + st_xmax(pieces.geom)) / 2, (st_ymin(pieces.geom) + st_ymax(pieces.geom)) / 2, st_xmax(pieces.geom), st_ymax(pieces.geom))
                ]) as cell
        ) as quadrant
        where st_npoints(pieces.geom) > {{ max_vertices }} and pieces.depth < {{ max_depth }}
    )

    select
        line_id,
        line_type,
        district_code,
        geom
    from pieces
    where
        (st_npoints(geom) <= {{ max_vertices }} or depth = {{ max_depth }})
        and not st_isempty(geom)
{%- endmacro %}
