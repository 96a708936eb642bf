"""The 3D twin in Dagster, after each gold publish: the buildings tiles, terrain and manifest (twin/tiles), and the
map tiles' overlay indexes and the viewer's default-view tiles rendered ahead of the first request (twin/map_index).

Domain logic is twin_viewer.tiles.build_twin and twin_viewer.maptiles.warm (both run without Dagster); this module
only wires them. The assets share the district partitions and single-run backfill of the gold publish so they run
in the same run, after it (`onemap build` runs unpartitioned assets first, then the partitioned ones); whatever
districts a run covers, the twin is rebuilt whole, because its quadtree, terrain and indexes span the region.
"""

import dagster as dg
from dagster import AssetExecutionContext

from lake.registry import BUILDINGS, STAC_ITEMS
from lake.settings import current_settings
from orchestration.feed_assets import asset_key
from orchestration.one_map_assets import GOLD_KEY
from orchestration.partitions import DISTRICT_PARTITIONS

TWIN_GROUP = "twin"
TWIN_TILES_KEY = dg.AssetKey(["twin", "tiles"])
TWIN_MAP_INDEX_KEY = dg.AssetKey(["twin", "map_index"])


@dg.asset(
    key=TWIN_TILES_KEY, group_name=TWIN_GROUP, deps=[GOLD_KEY, asset_key(BUILDINGS), asset_key(STAC_ITEMS)],
    partitions_def=DISTRICT_PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run(), kinds={"3dtiles", "python"},
    description="Buildings as 3D Tiles 1.1 (meshes from IFC/CityGML/CityJSON, footprints extruded otherwise), "
                "terrain from the catalog's DEM as quantized-mesh, and twin/manifest.json, under $ONEMAP_HOME/twin.",
)
def twin_tiles(context: AssetExecutionContext) -> dg.MaterializeResult:
    from twin_viewer.tiles import build_twin  # imported on use: loading the definitions stays quick

    manifest = build_twin(current_settings())
    buildings, terrain = manifest["buildings"], manifest["terrain"]
    if terrain["warning"]:
        context.log.warning(f"terrain: {terrain['warning']}")
    return dg.MaterializeResult(metadata={
        "build_id": manifest["build_id"] or "-",
        "buildings": dg.MetadataValue.int(buildings["count"]),
        "meshed": dg.MetadataValue.int(buildings["meshed"]),
        "extruded": dg.MetadataValue.int(buildings["extruded"]),
        "dropped_degenerate_triangles": dg.MetadataValue.int(buildings["dropped_degenerate_triangles"]),
        "terrain_available": dg.MetadataValue.bool(terrain["available"]),
        "terrain_warning": terrain["warning"] or "-",
    })


@dg.asset(
    key=TWIN_MAP_INDEX_KEY, group_name=TWIN_GROUP, deps=[GOLD_KEY], partitions_def=DISTRICT_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(), kinds={"python"},
    description="The overlay indexes of the map tiles (parcels of each survey year, conflicts, control lines) for "
                "the latest publish, and the composited map tiles of the viewer's default view, built ahead so the "
                "first page after a publish does not wait for them.",
)
def twin_map_index(context: AssetExecutionContext) -> dg.MaterializeResult:
    from twin_viewer.maptiles import warm

    figures = warm()
    return dg.MaterializeResult(metadata={"default_view_tiles": dg.MetadataValue.int(figures["tiles"]),
                                          "default_view_seconds": dg.MetadataValue.float(figures["seconds"])})


TWIN_ASSETS = [twin_tiles, twin_map_index]
