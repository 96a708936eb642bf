"""Raster assets referenced by STAC (imagery COGs, DEMs), read with rasterio for the twin.

Checks do not run at ingest: an item's assets may be large or remote, and the catalog row is useful before any
pixel is fetched. `inspect_raster` reads only the header (CRS, bounds, dtype, nodata, tiling, overviews);
`verify_raster` also decodes every block of every band, which is what finds a corrupt tile. Both raise
RasterError naming the file and GDAL's reason. `read_raster` reads a window (by bounds, in the raster's CRS)
from the smallest overview that still gives the requested size, as the terrain and imagery builders need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window, from_bounds

from lake.errors import OnemapError

COG_MIN_SIZE_FOR_OVERVIEWS = 512  # a COG smaller than one 512 px block needs no overviews


class RasterError(OnemapError):
    """A raster asset that cannot be opened or decoded."""

    def __init__(self, href: str, reason: str) -> None:
        super().__init__(f"{href}: {reason}")
        self.href = href


@dataclass(frozen=True)
class RasterInfo:
    href: str
    driver: str
    width: int
    height: int
    bands: int
    dtype: str
    crs: str | None  # "EPSG:n" when it has a code, else WKT
    bounds: tuple[float, float, float, float]
    nodata: float | None
    tiled: bool
    block_shape: tuple[int, int]
    overviews: tuple[int, ...]  # decimation factors of band 1
    cog_problems: tuple[str, ...]  # why it is not a cloud-optimized GeoTIFF (empty: it is one)

    @property
    def is_cog(self) -> bool:
        return not self.cog_problems


def _reason(exc: Exception) -> str:
    """rasterio says 'see previous exception'; the cause carries GDAL's own message (e.g. TIFFReadEncodedTile)."""
    cause = exc.__cause__ or exc.__context__
    return f"{exc} ({cause})" if cause is not None and str(cause) not in str(exc) else str(exc)


def inspect_raster(href: str) -> RasterInfo:
    """Header facts and whether the file is a COG (GeoTIFF, tiled, overviews when larger than one block)."""
    try:
        with rasterio.open(href) as src:
            block = src.block_shapes[0]
            tiled = bool(src.profile.get("tiled")) and block[1] < src.width
            overviews = tuple(src.overviews(1))
            problems = []
            if src.driver != "GTiff":
                problems.append(f"driver is {src.driver}, not GTiff")
            if not tiled:
                problems.append(f"not tiled (blocks of {block[0]}x{block[1]})")
            if max(src.width, src.height) > COG_MIN_SIZE_FOR_OVERVIEWS and not overviews:
                problems.append("no overviews")
            epsg = src.crs.to_epsg() if src.crs else None
            return RasterInfo(href, src.driver, src.width, src.height, src.count, src.dtypes[0],
                              f"EPSG:{epsg}" if epsg else (src.crs.to_wkt() if src.crs else None),
                              tuple(src.bounds), src.nodata, tiled, block, overviews, tuple(problems))
    except RasterioError as exc:
        raise RasterError(href, f"cannot open raster: {_reason(exc)}") from exc


def verify_raster(href: str) -> RasterInfo:
    """inspect_raster, then decode every block of every band (full resolution) so a corrupt tile is found."""
    info = inspect_raster(href)
    try:
        with rasterio.open(href) as src:
            for band in range(1, src.count + 1):
                for _, window in src.block_windows(band):
                    src.read(band, window=window)
    except RasterioError as exc:
        raise RasterError(href, f"raster data is corrupt: {_reason(exc)}") from exc
    return info


def read_raster(href: str, bounds: tuple[float, float, float, float] | None = None,
                out_size: tuple[int, int] | None = None, bands: list[int] | None = None) -> np.ndarray:
    """Pixels of `bounds` (the raster's CRS; default: all), resampled to `out_size` (rows, cols) if given.

    GDAL serves a smaller `out_size` from the nearest overview, so a preview of a large COG reads little.
    Returns a (bands, rows, cols) masked array (nodata masked).
    """
    try:
        with rasterio.open(href) as src:
            window = from_bounds(*bounds, transform=src.transform) if bounds else Window(0, 0, src.width, src.height)
            indexes = bands or list(range(1, src.count + 1))
            shape = (len(indexes), *out_size) if out_size else None
            return src.read(indexes, window=window, out_shape=shape, masked=True, boundless=bounds is not None,
                            resampling=Resampling.average if out_size else Resampling.nearest)
    except RasterioError as exc:
        raise RasterError(href, f"cannot read raster: {_reason(exc)}") from exc
