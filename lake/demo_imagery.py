"""The demo region's imagery: a static STAC 1.1.0 catalog of optical scenes and a DEM, with real COG files.

Layout under `<landing>/imagery/demo_catalog/` (one delivery: the folder, read by the `stac_catalog` reader):
    catalog.json
    demo-optical/collection.json, demo-optical/<scene id>/<scene id>.json   48 scenes of 2023
    demo-dem/collection.json, demo-dem/cq-dem-1km/cq-dem-1km.json           one DEM item over the region
    assets/yuzhong_rgb.tif    RGB COG (uint8, EPSG:4490, 512 x 384) over the central district 渝中区
    assets/cq_dem_1km.tif     DEM COG (int16 m, EPSG:4490, 0.01°, about 512 x 424) over the region's extent

Scenes tile the region's extent in a 4 x 3 grid of footprints; each footprint is seen four times a year (four
scenes a month), with cloud cover drawn as in a cloudy basin (often above 60%). Every scene shares the one small
RGB COG as its `visual` asset: the demo needs readable imagery, not 48 distinct images. The DEM is synthetic but
plausible: about 150 m along the Yangtze and its tributaries, rising through fold ridges to about 2,500 m in
the north-east (Daba Shan) and south-east (Wuling Shan). Deterministic for a seed; a second run replaces the first.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import shapely
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from lake.crs import gcj02_to_wgs84
from lake.demo_region import _RIVERS as RIVERS  # the demo's own river lines, so valleys match the parcels
from lake.demo_region import region_outline
from lake.domain import districts

CATALOG_DIR = "imagery/demo_catalog"
STAC_VERSION = "1.1.0"
EXTENSIONS = ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
              "https://stac-extensions.github.io/projection/v1.1.0/schema.json"]
GRID = (4, 3)  # footprint columns x rows over the region's extent
SCENES = 48
DEM_STEP_DEG = 0.01
CENTRAL_DISTRICT = "500103"  # 渝中区
COG_MEDIA = "image/tiff; application=geotiff; profile=cloud-optimized"


def write_demo_imagery(landing: Path, seed: int = 0) -> dict[str, int]:
    """Write the demo catalog and its COGs under `landing/imagery/`; returns counts of what was written."""
    root = Path(landing) / CATALOG_DIR
    shutil.rmtree(root, ignore_errors=True)
    (root / "assets").mkdir(parents=True)
    rng = np.random.default_rng([seed, 31])
    extent = tuple(float(v) for v in shapely.bounds(region_outline()))
    _write_cog(root / "assets/yuzhong_rgb.tif", *_rgb_image(rng))
    _write_cog(root / "assets/cq_dem_1km.tif", *_dem(extent, rng))
    scenes = _scene_items(extent, rng)
    dem = _dem_item(extent)
    _write_json(root / "catalog.json", {
        "type": "Catalog", "stac_version": STAC_VERSION, "id": "onemap-demo-imagery",
        "description": "Demo imagery of the OneMap Twin region: optical scenes of 2023 and a DEM.",
        "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"},
                  {"rel": "child", "href": "./demo-optical/collection.json", "type": "application/json"},
                  {"rel": "child", "href": "./demo-dem/collection.json", "type": "application/json"}]})
    _write_collection(root, "demo-optical", "Demo optical scenes (10 m, RGB) over the region, 2023.", scenes,
                      extent, ("2023-01-01T00:00:00Z", "2023-12-31T23:59:59Z"))
    _write_collection(root, "demo-dem", "Demo digital elevation model (1 km) of the region.", [dem], extent,
                      ("2023-01-01T00:00:00Z", "2023-01-01T00:00:00Z"))
    return {"items": len(scenes) + 1, "scenes": len(scenes), "dem_items": 1,
            "assets": sum(len(i["assets"]) for i in [*scenes, dem]), "collections": 2}


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def _write_collection(root: Path, cid: str, description: str, items: list[dict[str, Any]],
                      extent: tuple[float, ...], interval: tuple[str, str]) -> None:
    _write_json(root / cid / "collection.json", {
        "type": "Collection", "stac_version": STAC_VERSION, "stac_extensions": [], "id": cid,
        "description": description, "license": "CC-BY-4.0",
        "extent": {"spatial": {"bbox": [list(extent)]}, "temporal": {"interval": [list(interval)]}},
        "links": [{"rel": "root", "href": "../catalog.json", "type": "application/json"},
                  {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
                  *({"rel": "item", "href": f"./{i['id']}/{i['id']}.json", "type": "application/geo+json"}
                    for i in items)]})
    for item in items:
        item["collection"] = cid
        item["links"] = [{"rel": "root", "href": "../../catalog.json", "type": "application/json"},
                         {"rel": "collection", "href": "../collection.json", "type": "application/json"},
                         {"rel": "parent", "href": "../collection.json", "type": "application/json"}]
        _write_json(root / cid / item["id"] / f"{item['id']}.json", item)


def _item(item_id: str, box: tuple[float, float, float, float], when: datetime, props: dict[str, Any],
          assets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"type": "Feature", "stac_version": STAC_VERSION, "stac_extensions": EXTENSIONS, "id": item_id,
            "geometry": shapely.geometry.mapping(shapely.box(*box)), "bbox": list(box),
            "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), **props}, "assets": assets}


def _scene_items(extent: tuple[float, ...], rng: np.random.Generator) -> list[dict[str, Any]]:
    xmin, ymin, xmax, ymax = extent
    cols, rows = GRID
    dx, dy = (xmax - xmin) / cols, (ymax - ymin) / rows
    cloudy = rng.random(SCENES) < 0.6  # a cloudy basin: most scenes are mostly cloud
    cloud = np.where(cloudy, rng.uniform(55, 100, SCENES), rng.uniform(0, 30, SCENES))
    items = []
    for i in range(SCENES):
        tile = (i * 5) % (cols * rows)  # 5 is coprime with 12: each footprint seen once per quarter
        col, row = tile % cols, tile // cols
        box = (xmin + col * dx, ymin + row * dy, xmin + (col + 1) * dx, ymin + (row + 1) * dy)
        month = 1 + i // 4
        when = datetime(2023, month, 1 + int(rng.integers(0, 28)), 3, 20 + int(rng.integers(0, 20)), tzinfo=UTC)
        scene_id = f"DEMO_OPT_{when:%Y%m%d}_T{row}{col}"
        items.append(_item(
            scene_id, box, when,
            {"eo:cloud_cover": round(float(cloud[i]), 2), "gsd": 10.0, "platform": f"demo-opt-{1 + i % 2}",
             "constellation": "demo-opt", "instruments": ["msi"], "proj:epsg": 4490},
            {"visual": {"href": "../../assets/yuzhong_rgb.tif", "type": COG_MEDIA, "roles": ["visual"],
                        "title": "True colour (shared demo COG over 渝中区)"}}))
    return items


def _dem_item(extent: tuple[float, ...]) -> dict[str, Any]:
    return _item("cq-dem-1km", extent, datetime(2023, 1, 1, tzinfo=UTC),
                 {"gsd": 1000.0, "platform": "synthetic", "proj:epsg": 4490},
                 {"data": {"href": "../../assets/cq_dem_1km.tif", "type": COG_MEDIA, "roles": ["data"],
                           "title": "Elevation (m, int16)"}})


def _yuzhong_box() -> tuple[float, float, float, float]:
    seat = next(d for d in districts() if d.code == CENTRAL_DISTRICT)
    lon, lat = (float(v[0]) for v in gcj02_to_wgs84(np.array([seat.seat_lon_gcj02]),
                                                     np.array([seat.seat_lat_gcj02])))
    return lon - 0.08, lat - 0.045, lon + 0.08, lat + 0.045


def _distance_to_rivers(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Distance in degrees (lat-scaled) from each grid point to the nearest big river."""
    rivers = shapely.MultiLineString([list(r) for r in RIVERS])
    points = shapely.points(lon.ravel(), lat.ravel())
    return shapely.distance(points, rivers).reshape(lon.shape)


def _rgb_image(rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, ...]]:
    """Rivers (brown-green water), dense city (grey), hills (green) around the Yangtze–Jialing confluence."""
    box = _yuzhong_box()
    height, width = 384, 512
    lon, lat = np.meshgrid(np.linspace(box[0], box[2], width), np.linspace(box[3], box[1], height))
    water = _distance_to_rivers(lon, lat) < 0.004
    city = (np.hypot((lon - (box[0] + box[2]) / 2) / 0.06, (lat - (box[1] + box[3]) / 2) / 0.035) < 1.0) & ~water
    rgb = np.empty((3, height, width), dtype=np.uint8)
    base = {"hill": (62, 104, 58), "city": (150, 148, 142), "water": (86, 98, 70)}
    for band in range(3):
        layer = np.full((height, width), base["hill"][band], dtype=float)
        layer[city] = base["city"][band]
        layer[water] = base["water"][band]
        rgb[band] = np.clip(layer + rng.normal(0, 9, (height, width)), 0, 255).astype(np.uint8)
    return rgb, box


def _dem(extent: tuple[float, ...], rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, ...]]:
    xmin, ymin, xmax, ymax = extent
    width, height = int(np.ceil((xmax - xmin) / DEM_STEP_DEG)), int(np.ceil((ymax - ymin) / DEM_STEP_DEG))
    lon, lat = np.meshgrid(xmin + (np.arange(width) + 0.5) * DEM_STEP_DEG,
                           ymax - (np.arange(height) + 0.5) * DEM_STEP_DEG)
    valley = 1.0 - np.exp(-_distance_to_rivers(lon, lat) / 0.25)  # 0 at a river, towards 1 far from one
    # fold ridges striking NNE (the eastern Sichuan fold belt), fading in and out along strike
    across = lon * np.cos(0.45) - lat * np.sin(0.45)
    along = lon * np.sin(0.45) + lat * np.cos(0.45)
    fade = 0.5 + 0.5 * np.sin(along * 2 * np.pi / 1.7 + rng.uniform(0, 2 * np.pi))
    ridges = fade * (0.5 + 0.5 * np.sin(across * 2 * np.pi / 0.4 + rng.uniform(0, 2 * np.pi))) ** 3
    mountains = (np.exp(-((lon - 109.2) ** 2 + (lat - 31.8) ** 2) / 0.5)  # Daba Shan
                 + 0.8 * np.exp(-((lon - 108.6) ** 2 + (lat - 28.6) ** 2) / 0.4))  # Wuling Shan
    noise = sum(rng.normal(0, 1) * np.sin(lon * f + rng.uniform(0, 6.3)) * np.cos(lat * f + rng.uniform(0, 6.3))
                for f in (3.0, 7.0, 13.0))
    height_m = 150 + 750 * valley + 350 * ridges * valley + 1300 * mountains * valley + 40 * noise * valley
    return np.clip(height_m, 150, 2500).astype(np.int16)[None], (xmin, ymin, xmin + width * DEM_STEP_DEG, ymax)


def _write_cog(path: Path, pixels: np.ndarray, box: tuple[float, ...]) -> None:
    """A GeoTIFF in memory, copied by GDAL's COG driver (tiled 256, deflate, overviews) to `path`."""
    bands, height, width = pixels.shape
    transform = from_origin(box[0], box[3], (box[2] - box[0]) / width, (box[3] - box[1]) / height)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": bands, "dtype": pixels.dtype.name,
               "crs": "EPSG:4490", "transform": transform,
               "nodata": -32768 if pixels.dtype == np.int16 else None}
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(pixels)
        with memory.open() as src:
            rasterio.shutil.copy(src, path, driver="COG", blocksize=256, compress="DEFLATE",
                                 overview_resampling="average")
