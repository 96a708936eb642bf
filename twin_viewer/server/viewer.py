"""The twin viewer's pages and tiles: the web app, CesiumJS from node_modules, sign-in, 3D Tiles, terrain and map tiles.

Everything the page needs comes from this server (no CDN, no Cesium ion). Browsers asking for `/` are sent to the
viewer; JSON clients (OGC API – Features) keep the landing page. The app's own files (html, js, css) and CesiumJS
are public; everything else needs a department — a bearer token or the session cookie that signing in with one
sets (CesiumJS's tile requests carry it by themselves) — and shows only what it was granted (twin_grants).
Successful static and tile requests are not audited (a page load fetches hundreds of tiles; the audit trail is for
data access) — refused ones, sign-ins, sign-outs and every `/twin/api` call still are.
"""

from __future__ import annotations

import io
import json
import math
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from lake.access import sessions
from lake.access.grants import Credential, TableGrant
from lake.errors import OnemapError
from lake.registry import PARCELS
from lake.settings import REPO_ROOT, current_settings
from twin_viewer.server.deps import bearer_token, credential, twin_access
from twin_viewer.server.errors import ApiError
from twin_viewer.server.responses import json_response
from twin_viewer.server.static_files import file_response
from twin_viewer.server.twin_data import TwinData
from twin_viewer.server.twin_grants import TwinAccess
from twin_viewer.tiles.terrain import deep_tile

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
CESIUM_DIR = REPO_ROOT / "node_modules" / "cesium" / "Build" / "Cesium"
QUIET_PREFIXES = ("/viewer/", "/twin/buildings/", "/twin/terrain/", "/twin/imagery/", "/twin/overlay/")
AUDITED_PATHS = ("/viewer/signin", "/viewer/signout")  # under a quiet prefix, but who signed in is data access
TILE_MAX_AGE = 600
# what a department is shown depends on its credentials: browsers keep it per cookie, shared caches not at all
PRIVATE = {"Cache-Control": f"private, max-age={TILE_MAX_AGE}", "Vary": "Accept-Encoding, Cookie, Authorization"}
DEEP_TERRAIN_PATH = re.compile(r"(\d{1,2})/(\d{1,9})/(\d{1,9})\.terrain")

router = APIRouter(include_in_schema=False)


def unaudited(path: str, status: int) -> bool:
    """Static files and tiles served successfully are not written to the audit trail."""
    return status < 400 and path.startswith(QUIET_PREFIXES) and path not in AUDITED_PATHS


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


def _app_file(request: Request, path: str) -> Response:
    """A file of the web app, revalidated (ETag) on every use so an update of the app shows at once."""
    response = file_response(request, WEB_DIR, path, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.get("/viewer/")
def viewer_page(request: Request) -> Response:
    return _app_file(request, "index.html")


@router.get("/viewer/signin")
def signin_page(request: Request) -> Response:
    """The sign-in page: paste a department token, or open a link carrying it in the fragment (`#token=…`, which
    the page posts below, so the token never appears in a request line or a server log)."""
    return _app_file(request, "signin.html")


def _session_body(found: Credential, via: str) -> dict[str, Any]:
    return {"department": found.department.name, "token_id": found.token_id, "via": via,
            "expires_at": found.expires_at.isoformat() if found.expires_at else None}


@router.post("/viewer/signin")
async def sign_in(request: Request) -> Response:
    """Exchange a department token (JSON `{"token": …}`) for the session cookie: HttpOnly, SameSite=Strict, Path=/,
    expiring with the session (ONEMAP_SESSION_HOURS, never after the token). JSON only, so no other site's form can
    post it. The body is the token: it is kept out of the audit trail."""
    request.state.audit["parameters"] = None
    token = None
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            token = (await request.json()).get("token")
        except (ValueError, AttributeError):  # not JSON, or not an object
            pass
    if not isinstance(token, str):
        raise ApiError(400, "post the token as JSON: {\"token\": \"omt_…\"}")
    started = sessions.start(request.app.state.tokens, token.strip())
    if started is None:
        raise ApiError(401, "unknown, expired or revoked token; ask an operator for a new one "
                            "(`onemap access token issue DEPARTMENT`)")
    value, found = started
    request.state.audit.update(department=found.department.name, token_id=found.token_id)
    response = json_response(_session_body(found, "session"))
    seconds = max(1, math.ceil((found.expires_at - datetime.now(UTC)).total_seconds()))
    response.set_cookie(sessions.COOKIE_NAME, value, max_age=seconds, expires=seconds, path="/",
                        secure=request.url.scheme == "https", httponly=True, samesite="strict")
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/viewer/signout")
def sign_out(request: Request) -> Response:
    """Forget this browser's session and go back to the sign-in page. The cookie is stateless: to end every session
    of a token (a copied cookie too), revoke the token."""
    response = RedirectResponse("/viewer/signin", status_code=303)
    response.delete_cookie(sessions.COOKIE_NAME, path="/", secure=request.url.scheme == "https", httponly=True,
                           samesite="strict")
    return response


@router.get("/viewer/session")
def session(request: Request, found: Credential = Depends(credential)) -> Response:
    """Who is signed in (the page shows it, and goes to the sign-in page on 401)."""
    response = json_response(_session_body(found, "token" if bearer_token(request) else "session"))
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/viewer/defaults.json")
def viewer_defaults(access: TwinAccess = Depends(twin_access)) -> Response:
    """What the page opens on without a permalink, defined once in twin_viewer.maptiles (whose warm-up renders that
    view's tiles): the camera target and the composited map layers the department may see, in drawing order (all
    shown by default)."""
    maptiles = maptiles_module()
    years = parcel_years(access)
    layers = [name for name in maptiles.MAP_LAYERS if (bool(years) if name == "parcels" else access.layer(name))]
    return Response(json.dumps({"target": maptiles.DEFAULT_TARGET, "map_layers": layers}),
                    media_type="application/json", headers={**PRIVATE, "Cache-Control": "private, no-cache"})


@router.get("/viewer/cesium/{path:path}")
def cesium_file(request: Request, path: str) -> Response:
    return file_response(request, CESIUM_DIR, path, max_age=86400)


@router.get("/viewer/{path:path}")
def web_file(request: Request, path: str) -> Response:
    return _app_file(request, path)


@router.get("/twin/buildings/{path:path}")
def building_tile(request: Request, path: str, access: TwinAccess = Depends(twin_access)) -> Response:
    access.require_layer("buildings")
    return _private(file_response(request, twin_dir() / "buildings", path, max_age=TILE_MAX_AGE))


@router.get("/twin/terrain/{path:path}")
def terrain_tile(request: Request, path: str, access: TwinAccess = Depends(twin_access)) -> Response:
    """The built terrain files, and the levels below them cut from the DEM on request (tiles.terrain.deep_tile)."""
    access.require_layer("terrain")
    folder = twin_dir() / "terrain"
    try:
        return _private(file_response(request, folder, path, max_age=TILE_MAX_AGE))
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
    headers = {**PRIVATE, "ETag": etag, "Content-Encoding": "gzip"}
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


def parcel_years(access: TwinAccess) -> list[int]:
    """The survey years whose parcels the department may see (each year's table granted with what drawing needs)."""
    maptiles = maptiles_module()
    try:
        return [year for year in maptiles.survey_years()
                if access.layer("parcels", maptiles.parcels_table(year)) is not None]
    except OnemapError:  # nothing published yet: no parcels to show
        return []


def parcel_source(access: TwinAccess, year: int | None) -> TableGrant:
    """The grant on the table the parcels of `year` come from: 403 without any parcels grant, 404 for a year
    without parcels (or before the first publish), 403 when that year's table is not granted."""
    if access.layer("parcels") is None and access.layer("parcels", PARCELS) is None:
        access.require_layer("parcels")
    try:
        spec = maptiles_module().parcels_table(year)
    except (KeyError, OnemapError) as exc:  # maptiles.UnknownLayerError; nothing published yet
        raise ApiError(404, str(exc)) from exc
    return access.require_layer("parcels", spec)


def _private(response: Response) -> Response:
    response.headers.update(PRIVATE)
    return response


def _image(body: bytes) -> Response:
    kind = "image/jpeg" if body[:2] == b"\xff\xd8" else "image/png"
    return Response(body, media_type=kind, headers=PRIVATE)


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
def imagery_tile(z: int, x: int, y: int, access: TwinAccess = Depends(twin_access)) -> Response:
    access.require_layer("imagery")
    _check_tile(z, x, y)
    try:
        body = maptiles_module().imagery_tile(z, x, y)
    except ValueError as exc:  # maptiles.TileAddressError: beyond the deepest zoom
        raise ApiError(404, f"no imagery tile {z}/{x}/{y}: {exc}") from exc
    return _image(body if body is not None else transparent_png())


@router.get("/twin/overlay/{layers}/{z}/{x}/{y}.png")
def overlay_tile(layers: str, z: int, x: int, y: int, year: int | None = None,
                 access: TwinAccess = Depends(twin_access)) -> Response:
    """One overlay (`parcels`) or several map layers composited into one tile (`imagery,parcels,conflicts`): the
    page draws its visible map layers as one imagery layer. Each layer needs its grant (403 naming it otherwise)
    and is drawn from the grant's districts only."""
    _check_tile(z, x, y)
    maptiles = maptiles_module()
    names = layers.split(",")
    districts = {name: (parcel_source(access, year) if name == "parcels" else access.require_layer(name)).districts
                 for name in names if name in maptiles.MAP_LAYERS}
    try:
        body = maptiles.map_tile(names, z, x, y, year=year, districts=districts)
    except (KeyError, ValueError) as exc:  # maptiles.UnknownLayerError (a year without parcels), TileAddressError
        raise ApiError(404, f"no overlay tile {layers}/{z}/{x}/{y}" + (f" for {year}" if year else "") +
                       f": {exc}") from exc
    return _image(body)
