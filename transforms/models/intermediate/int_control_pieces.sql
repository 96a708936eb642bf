-- Control polygons split into pieces of at most max_piece_vertices vertices, so each overlay test is cheap.
{{ split_polygons(
    "(select line_id, line_type, district_code, geom from " ~ ref('stg_control_lines')
    ~ " where " ~ district_filter('district_code') ~ ")",
    var('max_piece_vertices', 64)) }}
