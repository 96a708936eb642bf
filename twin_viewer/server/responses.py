"""JSON responses encoded with orjson (fast; datetimes as RFC 3339, bytes as hex)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

GEOJSON = "application/geo+json"


def json_response(body: Any, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body, default=_default, option=orjson.OPT_NON_STR_KEYS), media_type=media_type)


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value)
