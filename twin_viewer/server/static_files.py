"""Files served from a folder without ever leaving it: safe path resolution, media types, caching and gzip.

Tile folders are written by the tiles build and read by browsers thousands of times per session, so responses carry
validators (ETag/Last-Modified → 304) and a cache lifetime, and compressible files are gzipped once and kept in a
small in-memory cache keyed by (path, mtime, size) so a rebuilt file is never served stale.
"""

from __future__ import annotations

import gzip
import mimetypes
import threading
from collections import OrderedDict
from email.utils import formatdate
from pathlib import Path

from fastapi import Request
from fastapi.responses import FileResponse, Response

from twin_viewer.server.errors import ApiError

MEDIA_TYPES = {
    ".terrain": "application/vnd.quantized-mesh",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".b3dm": "application/octet-stream",
    ".subtree": "application/octet-stream",
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".ktx2": "image/ktx2",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".xml": "application/xml",
}
COMPRESSIBLE = {".terrain", ".glb", ".gltf", ".json", ".geojson", ".js", ".mjs", ".css", ".html", ".svg", ".xml",
                ".wasm", ".subtree"}
GZIP_MAGIC = b"\x1f\x8b"
MAX_CACHED_BYTES = 64 * 1024 * 1024


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def resolve_inside(root: Path, relative: str) -> Path:
    """The file `relative` names under `root`, or a 404: no '..', no absolute path, no symlink leading out."""
    parts = relative.replace("\\", "/").split("/")
    if relative.startswith("/") or any(p in ("..", ".") for p in parts) or ":" in parts[0]:
        raise ApiError(404, f"no such file {relative!r} (paths must stay inside the folder)")
    base = root.resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        raise ApiError(404, f"no such file {relative!r}")
    return candidate


class _GzipCache:
    """Gzipped bodies of recently served files, evicted oldest-first past MAX_CACHED_BYTES."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, path: Path, mtime_ns: int, size: int) -> bytes:
        key = (str(path), mtime_ns, size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        body = gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
        with self._lock:
            self._items[key] = body
            self._size += len(body)
            while self._size > MAX_CACHED_BYTES and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)
        return body


_gzip_cache = _GzipCache()


def file_response(request: Request, root: Path, relative: str, max_age: int) -> Response:
    """Serve `root/relative` (404 outside `root`), gzipped when the client accepts it and it helps."""
    path = resolve_inside(root, relative)
    stat = path.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": etag,
               "Last-Modified": formatdate(stat.st_mtime, usegmt=True), "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    kind = media_type(path)
    with path.open("rb") as f:
        already_gzipped = f.read(2) == GZIP_MAGIC and path.suffix.lower() in (".terrain", ".json", ".subtree")
    if already_gzipped:  # quantized-mesh builders often store tiles gzipped: let the browser inflate them
        return FileResponse(path, media_type=kind, headers={**headers, "Content-Encoding": "gzip"})
    accepts_gzip = "gzip" in request.headers.get("accept-encoding", "")
    if accepts_gzip and path.suffix.lower() in COMPRESSIBLE and 1024 < stat.st_size <= MAX_CACHED_BYTES // 4:
        body = _gzip_cache.get(path, stat.st_mtime_ns, stat.st_size)
        return Response(body, media_type=kind, headers={**headers, "Content-Encoding": "gzip"})
    return FileResponse(path, media_type=kind, headers=headers)
