"""The twin viewer's pages and tiles: the web app, CesiumJS from node_modules, 3D Tiles, terrain and map tiles.

Everything the page needs comes from this server (no CDN, no Cesium ion). Browsers asking for `/` are sent to the
viewer; JSON clients (OGC API – Features) keep the landing page. Successful static and tile requests are not
audited (a page load fetches hundreds of tiles; the audit trail is for data access) — refused ones and every
`/twin/api` call still are.
"""

from __future__ import annotations

import io
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from lake.errors import OnemapError
from lake.settings import REPO_ROOT, current_settings
from twin_viewer.server.errors import ApiError
from twin_viewer.server.static_files import file_response
from twin_viewer.server.twin_data import TwinData
from twin_viewer.tiles.terrain import deep_tile

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
CESIUM_DIR = REPO_ROOT / "node_modules" / "cesium" / "Build" / "Cesium"
QUIET_PREFIXES = ("/viewer/", "/twin/buildings/", "/twin/terrain/", "/twin/imagery/", "/twin/overlay/")
TILE_MAX_AGE = 600
DEEP_TERRAIN_PATH = re.compile(r"(\d{1,2})/(\d{1,9})/(\d{1,9})\.terrain")

router = APIRouter(include_in_schema=False)


def unaudited(path: str, status: int) -> bool:
    """Static files and tiles served successfully are not written to the audit trail."""
    return status < 400 and path.startswith(QUIET_PREFIXES)


def install(app: FastAPI) -> None:
    """Send browsers that open `/` to the viewer (installed inside the audit/path gates, so they still apply)."""
    app.state.twin_data = TwinData()

    @app.middleware("http")
    async def browsers_to_viewer(request: Request, call_next: Any) -> Any:
        accept = request.headers.get("accept", "")
        if request.method == "GET" and request.url.path == "/" and "text/html" in accept and "f" not in \
                request.query_params:
            return RedirectResponse("/viewer/", status_code=303)
        return await call_next(request)


def warm_up() -> None:
    """Import the map-tile stack (rio-tiler, rasterio, Pillow), build the overlay indexes and render the default view's
    map tiles at server start (cache hits when a publish already did), so the first page does not wait for them;
    nothing published yet is fine here."""
    try:
        maptiles_module().warm()
    except (ApiError, OnemapError):
        pass


def twin_dir() -> Path:
    return current_settings().home / "twin"


@router.get("/viewer")
def viewer_no_slash() -> RedirectResponse:
    return RedirectResponse("/viewer/", status_code=308)


@router.get("/viewer/")
def viewer_page(request: Request) -> Response:
    response = file_response(request, WEB_DIR, "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.get("/viewer/defaults.json")
def viewer_defaults() -> Response:
    """What the page opens on without a permalink, defined once in twin_viewer.maptiles (whose warm-up renders that
    view's tiles): the camera target and the composited map layers in drawing order (all shown by default)."""
    maptiles = maptiles_module()
    return Response(json.dumps({"target": maptiles.DEFAULT_TARGET, "map_layers": list(maptiles.MAP_LAYERS)}),
                    media_type="application/json", headers={"Cache-Control": "no-cache"})


@router.get("/viewer/cesium/{path:path}")
def cesium_file(request: Request, path: str) -> Response:
    return file_response(request, CESIUM_DIR, path, max_age=86400)


@router.get("/viewer/{path:path}")
def web_file(request: Request, path: str) -> Response:
    response = file_response(request, WEB_DIR, path, max_age=0)
    response.headers["Cache-Control"] = "no-cache"  # revalidated (ETag) so an update of the app shows at once
    return response


@router.get("/twin/buildings/{path:path}")
def building_tile(request: Request, path: str) -> Response:
    return file_response(request, twin_dir() / "buildings", path, max_age=TILE_MAX_AGE)


@router.get("/twin/terrain/{path:path}")
def terrain_tile(request: Request, path: str) -> Response:
    """The built terrain files, and the levels below them cut from the DEM on request (tiles.terrain.deep_tile)."""
    folder = twin_dir() / "terrain"
    try:
        return file_response(request, folder, path, max_age=TILE_MAX_AGE)
    except ApiError:
        address = DEEP_TERRAIN_PATH.fullmatch(path)
        try:
            deep = deep_tile(folder, *(int(v) for v in address.groups())) if address else None
        except OnemapError as exc:
            raise ApiError(500, f"terrain tile {path}: {exc}") from exc
        if deep is None:
            raise
    body, version = deep
    etag = f'"{version}-{path}"'
    headers = {"Cache-Control": f"public, max-age={TILE_MAX_AGE}", "ETag": etag, "Content-Encoding": "gzip"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/vnd.quantized-mesh", headers=headers)


def maptiles_module() -> Any:
    """The map-tile package, imported on first use (rio-tiler and rasterio take seconds to import)."""
    try:
        import twin_viewer.maptiles as maptiles
    except ImportError as exc:
        raise ApiError(404, f"map tiles are not available in this installation ({exc})") from exc
    return maptiles


def _image(body: bytes) -> Response:
    kind = "image/jpeg" if body[:2] == b"\xff\xd8" else "image/png"
    return Response(body, media_type=kind, headers={"Cache-Control": f"public, max-age={TILE_MAX_AGE}"})


@cache
def transparent_png() -> bytes:
    """An empty 256×256 tile: where there is no imagery the layer shows through (no failed request in the page)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def _check_tile(z: int, x: int, y: int) -> None:
    if not (0 <= z <= 24 and 0 <= x < 2 ** z and 0 <= y < 2 ** z):
        raise ApiError(404, f"no tile {z}/{x}/{y} (x and y must lie in 0..2^z-1, z in 0..24)")


@router.get("/twin/imagery/{z}/{x}/{y}.png")
def imagery_tile(z: int, x: int, y: int) -> Response:
    _check_tile(z, x, y)
    try:
        body = maptiles_module().imagery_tile(z, x, y)
    except ValueError as exc:  # maptiles.TileAddressError: beyond the deepest zoom
        raise ApiError(404, f"no imagery tile {z}/{x}/{y}: {exc}") from exc
    return _image(body if body is not None else transparent_png())


@router.get("/twin/overlay/{layers}/{z}/{x}/{y}.png")
def overlay_tile(layers: str, z: int, x: int, y: int, year: int | None = None) -> Response:
    """One overlay (`parcels`) or several map layers composited into one tile (`imagery,parcels,conflicts`): the
    page draws its visible map layers as one imagery layer."""
    _check_tile(z, x, y)
    maptiles = maptiles_module()
    try:
        body = maptiles.map_tile(layers.split(","), z, x, y, year=year)
    except (KeyError, ValueError) as exc:  # maptiles.UnknownLayerError (a year without parcels), TileAddressError
        raise ApiError(404, f"no overlay tile {layers}/{z}/{x}/{y}" + (f" for {year}" if year else "") +
                       f": {exc}") from exc
    return _image(body)
