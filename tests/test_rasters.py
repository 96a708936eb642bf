"""Raster assets for the twin (real GeoTIFF/COG/DEM files, a corrupt one) and the demo imagery catalog end to end."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from lake import delta_io
from lake.batch_ingest import ingest_landing
from lake.demo_imagery import CATALOG_DIR, write_demo_imagery
from lake.rasters import RasterError, inspect_raster, read_raster, verify_raster
from lake.registry import QUARANTINE, STAC_ASSETS, STAC_ITEMS


def test_real_cog_is_recognised_and_read_from_an_overview(realdata: Path) -> None:
    cog = str(realdata / "raster/rasterio_cogeo.tif")
    info = verify_raster(cog)
    assert (info.crs, info.dtype, info.bands, info.width, info.height) == ("EPSG:3857", "uint8", 3, 1024, 1024)
    assert info.is_cog and info.overviews == (2, 4, 8, 16, 32, 64)
    preview = read_raster(cog, out_size=(64, 64))
    assert preview.shape == (3, 64, 64) and preview.mean() > 0


def test_real_striped_geotiffs_are_readable_but_not_cogs(realdata: Path) -> None:
    dem = inspect_raster(str(realdata / "raster/qgis_SRTM_dem.tif"))
    assert (dem.crs, dem.dtype, dem.nodata) == ("EPSG:4326", "int16", -32768.0)
    assert not dem.is_cog and "not tiled" in dem.cog_problems[0]
    left, bottom, right, top = dem.bounds
    window = read_raster(str(realdata / "raster/qgis_SRTM_dem.tif"),
                         bounds=(left, bottom, (left + right) / 2, (bottom + top) / 2))
    assert window.shape[0] == 1 and 0 < window.max() < 3000  # Western Cape heights in metres
    rgb = inspect_raster(str(realdata / "raster/rasterio_RGB.byte.tif"))
    assert (rgb.crs, rgb.nodata, rgb.bands) == ("EPSG:32618", 0.0, 3) and "no overviews" in rgb.cog_problems


def test_corrupt_geotiff_is_reported_naming_the_file(realdata: Path) -> None:
    corrupt = str(realdata / "raster/rasterio_corrupt.tif")
    assert inspect_raster(corrupt).is_cog  # the header is fine ...
    with pytest.raises(RasterError, match=r"rasterio_corrupt\.tif.*corrupt.*TIFFReadEncodedTile"):
        verify_raster(corrupt)  # ... a tile is not


def test_missing_raster_is_reported_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(RasterError, match=r"nothing\.tif: cannot open raster"):
        inspect_raster(str(tmp_path / "nothing.tif"))


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def test_demo_imagery_is_deterministic_valid_cogs(tmp_path: Path) -> None:
    counts = write_demo_imagery(tmp_path / "a", seed=3)
    assert counts == {"items": 49, "scenes": 48, "dem_items": 1, "assets": 49, "collections": 2}
    write_demo_imagery(tmp_path / "b", seed=3)
    assert _digest(tmp_path / "a" / CATALOG_DIR) == _digest(tmp_path / "b" / CATALOG_DIR)
    dem = verify_raster(str(tmp_path / "a" / CATALOG_DIR / "assets/cq_dem_1km.tif"))
    assert dem.is_cog and dem.crs == "EPSG:4490" and dem.dtype == "int16" and dem.width * dem.height > 100_000
    heights = read_raster(dem.href)
    assert 150 <= heights.min() < 200 and 1500 < heights.max() <= 2500
    yuzhong = read_raster(dem.href, bounds=(106.55, 29.54, 106.60, 29.58))
    assert yuzhong.min() < 300  # the Yangtze–Jialing confluence lies low
    rgb = verify_raster(str(tmp_path / "a" / CATALOG_DIR / "assets/yuzhong_rgb.tif"))
    left, bottom, right, top = rgb.bounds
    assert rgb.is_cog and rgb.bands == 3 and left < 106.58 < right and bottom < 29.56 < top


def test_demo_imagery_ingests_through_its_contract(home: Path) -> None:
    write_demo_imagery(home / "landing")
    results = ingest_landing("stac_items")
    assert [(r.feed, r.status, r.rows_read, r.rows_silver, r.rows_quarantined) for r in results] == [
        ("demo_imagery", "ingested", 49, 49, 0)]
    items = delta_io.read_table(STAC_ITEMS)
    by_collection = items.group_by("collection").aggregate([([], "count_all")]).to_pydict()
    assert dict(zip(by_collection["collection"], by_collection["count_all"], strict=True)) == {
        "demo-optical": 48, "demo-dem": 1}
    months = pc.strftime(items.filter(pc.equal(items.column("collection"), "demo-optical")).column("datetime"),
                         "%m").to_pylist()
    assert sorted(set(months)) == [f"{m:02d}" for m in range(1, 13)]
    cloud = items.column("cloud_cover").to_numpy(zero_copy_only=False)
    assert np.nanmin(cloud) < 30 and np.nanmax(cloud) > 60
    assets = delta_io.read_table(STAC_ASSETS)
    assert assets.num_rows == 49
    assert all(Path(h).is_file() for h in assets.column("href").to_pylist())  # absolute, resolvable hrefs
    assert delta_io.read_table(QUARANTINE["stac_items"]).num_rows == 0
    assert [r.status for r in ingest_landing("stac_items")] == ["skipped"]
