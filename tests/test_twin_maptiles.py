"""The twin's map tiles on a published demo home: overlay colours at known parcels, conflicts, imagery from the
catalog's COGs, the parcel lookup in both survey years, cache invalidation by a new publish, and bad input.

Pixel positions are computed here from the Web-Mercator formulas, independently of twin_viewer.maptiles.
"""

from __future__ import annotations

import io
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import rasterio
import shapely
import yaml
from PIL import Image

import twin_viewer.maptiles as maptiles
from lake import delta_io
from lake.batch_ingest import ingest_landing
from lake.domain import land_classes
from lake.errors import OnemapError
from lake.publish import read_published
from lake.registry import GOLD_CONFLICTS, GOLD_ONE_MAP_PARCELS, PARCELS, STAC_ASSETS
from quality.wap import run_one_map
from tests.test_stac import synthetic_item, write_catalog

PALETTE = yaml.safe_load((Path(maptiles.__file__).parent / "palette.yaml").read_text(encoding="utf-8"))
YUZHONG = (106.56, 29.555)  # inside the demo's RGB COG (渝中区)


def pixel_of(lon: float, lat: float, z: int) -> tuple[int, int, int, int]:
    """(tile x, tile y, column, row) of a lon/lat at zoom z: spherical Mercator, 256-pixel XYZ tiles."""
    world = 256 * 2 ** z
    fx = (lon + 180.0) / 360.0 * world
    fy = (1.0 - math.log(math.tan(math.radians(lat)) + 1.0 / math.cos(math.radians(lat))) / math.pi) / 2.0 * world
    return int(fx // 256), int(fy // 256), int(fx % 256), int(fy % 256)


def rgba_at(png: bytes, col: int, row: int) -> tuple[int, ...]:
    return Image.open(io.BytesIO(png)).convert("RGBA").getpixel((col, row))


def expected_fill(code: str) -> tuple[int, ...]:
    h = PALETTE["land_classes"][code].lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), PALETTE["fill_alpha"]


def inner_point(wkb: bytes) -> tuple[shapely.Point, float]:
    """A point inside the polygon and its distance (degrees) to the polygon's boundary."""
    geom = shapely.from_wkb(wkb)
    point = shapely.point_on_surface(geom)
    return point, shapely.distance(point, geom.boundary)


def roomy_parcels(table: pa.Table, margin_deg: float) -> list[dict]:
    """Parcels whose representative point lies at least margin_deg inside them."""
    rows = []
    for row in table.to_pylist():
        point, room = inner_point(row["geometry"])
        if room > margin_deg:
            rows.append({**row, "lon": point.x, "lat": point.y})
    return rows


@pytest.fixture
def demo(published_demo: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("ONEMAP_HOME", str(published_demo["home"]))
    monkeypatch.delenv("ONEMAP_LAKE", raising=False)
    return published_demo


@pytest.fixture
def demo_copy(published_demo: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the published demo home (its STAC assets still point at the original COGs)."""
    home = tmp_path / "home"
    shutil.copytree(published_demo["home"], home, ignore=shutil.ignore_patterns("twin"))
    monkeypatch.setenv("ONEMAP_HOME", str(home))
    monkeypatch.delenv("ONEMAP_LAKE", raising=False)
    return home


def test_every_land_class_has_a_colour_and_the_legend_shows_it() -> None:
    assert set(land_classes()) <= set(PALETTE["land_classes"])
    legend = {row["code"]: row for row in maptiles.legend()}
    assert set(legend) == set(land_classes())
    assert legend["0101"]["color"] == PALETTE["land_classes"]["0101"].upper() and legend["0101"]["name"] == "水田"


@pytest.mark.parametrize("z", [10, 14])  # 10: sampled from the overview raster; 14: drawn from the polygons
def test_parcel_tile_has_the_land_class_colour_inside_the_parcel(demo: dict, z: int) -> None:
    parcels = read_published(GOLD_ONE_MAP_PARCELS, ["parcel_id", "land_class_code", "geometry"])
    margin = 4 * 360 / (256 * 2 ** z)  # four pixels (longitude degrees; latitude pixels are smaller here)
    checked = 0
    for row in roomy_parcels(parcels, margin)[:5]:
        tx, ty, col, r = pixel_of(row["lon"], row["lat"], z)
        png = maptiles.overlay_tile("parcels", z, tx, ty)
        assert rgba_at(png, col, r) == expected_fill(row["land_class_code"]), row["parcel_id"]
        checked += 1
    assert checked == 5


def test_survey_year_switch_shows_the_older_survey(demo: dict) -> None:
    assert maptiles.survey_years() == [2019, 2023]
    old = delta_io.read_table(PARCELS, ["parcel_id", "survey_year", "land_class_code", "geometry"])
    old = old.filter(pc.equal(old.column("survey_year"), 2019))
    new = dict(zip(*(read_published(GOLD_ONE_MAP_PARCELS, ["parcel_id", "land_class_code"]).column(c).to_pylist()
                     for c in ("parcel_id", "land_class_code")), strict=True))
    changed = [r for r in roomy_parcels(old, 4 * 360 / 2 ** 20)
               if r["parcel_id"] in new and new[r["parcel_id"]] != r["land_class_code"]]
    assert changed, "the demo changes some parcels' classes between the surveys"
    row = changed[0]
    tx, ty, col, r = pixel_of(row["lon"], row["lat"], 12)
    assert rgba_at(maptiles.overlay_tile("parcels", 12, tx, ty, year=2019), col, r) == \
        expected_fill(row["land_class_code"])
    assert rgba_at(maptiles.overlay_tile("parcels", 12, tx, ty), col, r) == expected_fill(new[row["parcel_id"]])


def test_parcel_at_finds_the_parcel_in_both_survey_years(demo: dict) -> None:
    for year in (2019, 2023):
        table = delta_io.read_table(PARCELS, ["parcel_id", "survey_year", "geometry"])
        table = table.filter(pc.equal(table.column("survey_year"), year))
        for row in table.slice(0, 20).to_pylist():
            point, _ = inner_point(row["geometry"])
            found = maptiles.parcel_at(point.x, point.y, year=None if year == 2023 else year)
            assert found is not None and found["parcel_id"] == row["parcel_id"], (year, row["parcel_id"])
            assert found["survey_year"] == year
            if year == 2023:  # gold columns for the published year
                assert {"group_name", "conflict_rules", "ecological_red_line_m2"} <= set(found)
            else:
                assert "parcel_number" in found and "group_name" not in found
    assert maptiles.parcel_at(100.0, 40.0) is None  # far outside the region


def test_conflict_tile_marks_a_planted_conflict(demo: dict) -> None:
    planted = {r["id"] for rows in demo["manifest"].planted_conflicts.values() for r in rows}
    conflicts = [r for r in read_published(GOLD_CONFLICTS, ["parcel_id", "building_id", "severity", "geometry"])
                 .to_pylist() if (r["parcel_id"] or r["building_id"]) in planted and r["severity"] == "error"]
    assert conflicts
    error = PALETTE["conflicts"]["error"]
    colours = {tuple(int(c.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)) for c in (error["fill"], error["line"])}
    for row in conflicts[:4]:
        point, _ = inner_point(row["geometry"])
        for z in (10, 15):
            tx, ty, col, r = pixel_of(point.x, point.y, z)
            pixel = rgba_at(maptiles.overlay_tile("conflicts", z, tx, ty), col, r)
            assert pixel[3] > 0 and pixel[:3] in colours, (row, z, pixel)


def test_control_lines_tile_outlines_a_line_and_outside_tiles_are_empty(demo: dict) -> None:
    lines = maptiles.vector_layer("control_lines")["features"]
    line = next(f for f in lines if f["properties"]["line_type"] == "permanent_basic_farmland")
    ring = line["geometry"]["coordinates"][0] if line["geometry"]["type"] == "Polygon" \
        else line["geometry"]["coordinates"][0][0]
    lon, lat = ring[0]
    tx, ty, col, r = pixel_of(lon, lat, 13)
    image = np.asarray(Image.open(io.BytesIO(maptiles.overlay_tile("control_lines", 13, tx, ty))).convert("RGBA"))
    window = image[max(0, r - 2):r + 3, max(0, col - 2):col + 3].reshape(-1, 4)
    outline = tuple(int(PALETTE["control_lines"]["permanent_basic_farmland"]["line"][i:i + 2], 16) for i in (1, 3, 5))
    assert any(tuple(p[:3]) == outline and p[3] == 255 for p in window)
    for layer in maptiles.OVERLAY_LAYERS:
        for z, x, y in ((3, 0, 0), (12, 0, 4095), (6, 63, 20)):  # the Pacific, the anti-meridian, the Arctic
            empty = np.asarray(Image.open(io.BytesIO(maptiles.overlay_tile(layer, z, x, y))).convert("RGBA"))
            assert empty.shape == (256, 256, 4) and not empty[..., 3].any()


def test_composite_tile_draws_parcels_over_the_imagery(demo: dict) -> None:
    tx, ty, _, _ = pixel_of(*YUZHONG, 13)
    imagery = np.asarray(Image.open(io.BytesIO(maptiles.imagery_tile(13, tx, ty))).convert("RGBA")).astype(float)
    parcels = np.asarray(Image.open(io.BytesIO(maptiles.overlay_tile("parcels", 13, tx, ty))).convert("RGBA"))
    both = maptiles.map_tile(["parcels", "imagery"], 13, tx, ty)  # drawn imagery first whatever the order asked
    assert both == maptiles.map_tile(["imagery", "parcels"], 13, tx, ty)
    composite = np.asarray(Image.open(io.BytesIO(both)).convert("RGBA")).astype(float)
    under = (imagery[..., 3] == 255) & (parcels[..., 3] == PALETTE["fill_alpha"])
    assert under.mean() > 0.2
    alpha = PALETTE["fill_alpha"] / 255  # "over": the parcel colour at its alpha on the opaque imagery
    expected = parcels[..., :3][under] * alpha + imagery[..., :3][under] * (1 - alpha)
    assert np.abs(composite[..., :3][under] - expected).max() <= 2 and (composite[..., 3][under] == 255).all()
    assert list((demo["home"] / "twin" / "cache" / "composite" / "imagery,parcels").glob(f"*/13/{tx}/{ty}.png"))
    assert maptiles.map_tile(["conflicts"], 13, tx, ty) == maptiles.overlay_tile("conflicts", 13, tx, ty)
    with pytest.raises(KeyError, match="no map layer 'roads'"):
        maptiles.map_tile(["imagery", "roads"], 13, tx, ty)


def test_warm_renders_the_default_view_and_a_request_reads_it_from_the_cache(demo_copy: Path) -> None:
    from twin_viewer.maptiles.default_view import TARGET, VIEW_ZOOMS

    figures = maptiles.warm()
    z = VIEW_ZOOMS[-1]
    tx, ty, _, _ = pixel_of(TARGET["lon"], TARGET["lat"], z)
    folder = demo_copy / "twin" / "cache" / "composite" / ",".join(maptiles.MAP_LAYERS)
    (cached,) = folder.glob(f"*/{z}/{tx}/{ty}.png")
    assert figures["tiles"] >= len(VIEW_ZOOMS) and figures["seconds"] > 0
    marker = io.BytesIO()
    Image.new("RGBA", (256, 256), (1, 2, 3, 4)).save(marker, format="PNG")
    cached.write_bytes(marker.getvalue())  # what a request returns now can only come from the cache
    assert maptiles.map_tile(maptiles.MAP_LAYERS, z, tx, ty, year=maptiles.survey_years()[-1]) == marker.getvalue()


def test_vector_layers(demo: dict) -> None:
    districts = maptiles.vector_layer("districts")
    assert len(districts["features"]) == 38
    assert {"district_code", "name"} <= set(districts["features"][0]["properties"])
    hazards = maptiles.vector_layer("hazard_points")["features"]
    assert hazards and all(f["geometry"]["type"] == "Point" for f in hazards)
    assert all(105 < f["geometry"]["coordinates"][0] < 111 for f in hazards)


def test_imagery_tile_over_a_scene_and_none_outside(demo: dict) -> None:
    tx, ty, _, _ = pixel_of(*YUZHONG, 13)
    png = maptiles.imagery_tile(13, tx, ty)
    assert png is not None
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    assert image.shape == (256, 256, 4) and (image[..., 3] == 255).mean() > 0.9 and image[..., :3].std() > 5
    assert maptiles.imagery_tile(*(lambda t: (12, t[0], t[1]))(pixel_of(109.5, 31.5, 12))) is None  # no COG there
    assert maptiles.imagery_tile(2, 0, 0) is None
    cached = list((demo["home"] / "twin" / "cache" / "imagery").glob(f"*/13/{tx}/{ty}.png"))
    assert len(cached) == 1 and cached[0].read_bytes() == png


def _red_copy_of(cog: Path, target: Path) -> None:
    with rasterio.open(cog) as src:
        profile = src.profile
        red = np.zeros((src.count, src.height, src.width), np.uint8)
        red[0] = 230
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(red)
        dst.build_overviews([2, 4], rasterio.enums.Resampling.average)


def test_newest_scene_first_and_a_corrupt_or_missing_asset_is_skipped(demo_copy: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    shared = delta_io.read_table(STAC_ASSETS, ["href"]).column("href").to_pylist()
    cog = Path(next(h for h in shared if h.endswith("yuzhong_rgb.tif")))
    folder = demo_copy / "landing" / "imagery" / "newer"
    item = synthetic_item("NEWER_RED", "scenes", x=106.50, y=29.50)
    item["properties"].update({"datetime": "2024-06-01T03:00:00Z", "eo:cloud_cover": 3.0})
    del item["assets"]["thumbnail"]
    write_catalog(folder, [item])
    _red_copy_of(cog, folder / "scenes" / "NEWER_RED.tif")
    (demo_copy / "feeds").mkdir(exist_ok=True)
    (demo_copy / "feeds" / "newer.yaml").write_text(
        "feed: newer\ntable: stac_items\nformat: stac_catalog\nlanding: imagery/newer\nprune_missing: false\n"
        "fields: {item_id: id, collection: collection, datetime: datetime, cloud_cover: eo:cloud_cover}\n",
        encoding="utf-8")
    newer = [r for r in ingest_landing("stac_items") if r.feed == "newer"]
    assert [(r.status, r.rows_silver) for r in newer] == [("ingested", 1)]

    tiles = {z: pixel_of(*YUZHONG, z) for z in (12, 13, 14)}

    def at_yuzhong(z: int) -> tuple[int, ...] | None:
        png = maptiles.imagery_tile(z, *tiles[z][:2])
        return None if png is None else rgba_at(png, *tiles[z][2:])

    assert at_yuzhong(12)[:3] == (230, 0, 0)  # the newest scene is on top
    red = folder / "scenes" / "NEWER_RED.tif"
    red.write_bytes(red.read_bytes()[: red.stat().st_size // 3])  # truncated: the header reads, the pixels do not
    with caplog.at_level(logging.WARNING, logger="twin_viewer.maptiles.imagery"):
        truncated = at_yuzhong(13)
        red.unlink()
        missing = at_yuzhong(14)
    for pixel in (truncated, missing):  # still rendered, from the older scene
        assert pixel is not None and pixel[3] == 255 and pixel[:3] != (230, 0, 0)
    warnings = [r.getMessage() for r in caplog.records]
    assert sum(str(red) in m for m in warnings) >= 2, warnings


def test_a_new_publish_invalidates_overlay_tiles(demo_copy: Path) -> None:
    parcels = read_published(GOLD_ONE_MAP_PARCELS, ["parcel_id", "district_code", "land_class_code", "geometry"])
    row = next(r for r in roomy_parcels(parcels, 0.01) if r["land_class_code"] != "1101")
    tx, ty, col, r = pixel_of(row["lon"], row["lat"], 12)
    before = maptiles.overlay_tile("parcels", 12, tx, ty)
    assert rgba_at(before, col, r) == expected_fill(row["land_class_code"])
    overlay_dir = demo_copy / "twin" / "cache" / "overlay" / "parcels"
    (old_key,) = [p.name for p in overlay_dir.iterdir()]

    silver = delta_io.read_table(PARCELS)
    district = silver.filter(pc.equal(silver.column("district_code"), row["district_code"]))
    hit = pc.and_(pc.equal(district.column("parcel_id"), row["parcel_id"]), pc.equal(district.column("survey_year"),
                                                                                      2023))
    codes = pc.if_else(hit, "1101", district.column("land_class_code"))
    district = district.set_column(district.schema.get_field_index("land_class_code"), "land_class_code", codes)
    delta_io.replace_where(PARCELS, district, "district_code", row["district_code"])
    outcome = run_one_map([row["district_code"]])

    after = maptiles.overlay_tile("parcels", 12, tx, ty)
    assert rgba_at(after, col, r) == expected_fill("1101")  # river water now, not the cached colour
    keys = [p.name for p in overlay_dir.iterdir()]
    assert keys == [f"{outcome.build_id}-y2023"] and old_key not in keys  # the old build's tiles are gone
    assert maptiles.parcel_at(row["lon"], row["lat"])["land_class_code"] == "1101"


@pytest.mark.parametrize("z, x, y", [(-1, 0, 0), (3, 8, 0), (3, 0, -1), (23, 0, 0), (2, 1.5, 0)])
def test_bad_tile_addresses(demo: dict, z, x, y) -> None:
    for call in (lambda: maptiles.overlay_tile("parcels", z, x, y), lambda: maptiles.imagery_tile(z, x, y)):
        with pytest.raises(ValueError, match="tile"):
            call()


def test_unknown_layers_and_years(demo: dict) -> None:
    with pytest.raises(KeyError, match="layers: parcels, conflicts, control_lines"):
        maptiles.overlay_tile("roads", 10, 0, 0)
    with pytest.raises(KeyError, match=r"survey years: \[2019, 2023\]"):
        maptiles.overlay_tile("parcels", 10, 0, 0, year=2011)
    with pytest.raises(KeyError, match="no vector layer 'roads'"):
        maptiles.vector_layer("roads")


def test_nothing_published_yet_is_a_clear_error(home: Path) -> None:
    for call in (lambda: maptiles.overlay_tile("parcels", 10, 800, 420), lambda: maptiles.parcel_at(106.5, 29.5),
                 lambda: maptiles.overlay_tile("conflicts", 10, 800, 420),
                 lambda: maptiles.overlay_tile("control_lines", 10, 800, 420)):
        with pytest.raises(OnemapError, match="onemap build"):
            call()
    assert maptiles.imagery_tile(10, 800, 420) is None  # no catalog: no imagery, Cesium's base layer shows
    assert json.dumps(maptiles.legend())  # the legend needs no lake
