"""Query parameters shared by OGC API – Features and the STAC API, each bounded, so a bad value is a 400 naming the
parameter and the reason, never a 500 from deeper down (an offset overflowing DuckDB's BIGINT, a date-time that
leaves the years 1-9999 once in UTC, a geometry too deep to serialise)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import shapely
from shapely.errors import GEOSException
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity
from starlette.requests import Request

from twin_viewer.server.errors import ApiError

MAX_INTEGER = 1_000_000_000
"""Largest limit or offset: beyond any page or table served here, far below DuckDB's BIGINT."""
MAX_NAMES = 1_000
"""Entries of a collections, ids or properties list."""
MAX_NAME_CHARS = 1_024
"""Characters of one collection, item, feature or property id (composite feature ids included)."""
MAX_TEXT_CHARS = 256
"""Characters of a bbox or datetime value (a 6-number bbox or an interval of two RFC 3339 date-times fit easily)."""
MAX_VERTICES = 10_000
"""Positions of an `intersects` geometry."""
MAX_GEOJSON_BYTES = 1024 * 1024
"""An `intersects` query value or a POST search body (10,000 positions take about 400 KB)."""

DIGITS = re.compile(r"[0-9]{1,10}")
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
GEOMETRY_DEPTHS = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2,
                   "MultiPolygon": 3}
"""GeoJSON geometry type → how many arrays wrap its positions."""


@dataclass(frozen=True)
class Interval:
    start: datetime | None
    end: datetime | None


def shown(value: object, width: int = 80) -> str:
    """A value as an error message quotes it, cut short: a refusal must not echo a megabyte back."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width - 3]}..."


def checked_query(request: Request, allowed: set[str]) -> dict[str, str]:
    """The query parameters, each given once and each one the route understands: an unknown one (say `intersects`
    where it is not supported) is refused rather than silently ignored, a repeated one rather than guessed at."""
    query = request.query_params
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ApiError(400, f"unknown query parameter(s) {shown(', '.join(unknown))}; use {', '.join(sorted(allowed))}")
    repeated = sorted(name for name in query if len(query.getlist(name)) > 1)
    if repeated:
        raise ApiError(400, f"query parameter(s) {', '.join(repeated)} given more than once")
    return dict(query)


def _text(name: str, value: str) -> str:
    if len(value) > MAX_TEXT_CHARS:
        raise ApiError(400, f"{name}: longer than {MAX_TEXT_CHARS} characters")
    return value


def parse_integer(name: str, value: str | int | None, minimum: int, default: int) -> int:
    """An integer in [minimum, MAX_INTEGER]: ASCII digits in a query (no sign, exponent, hex or blank), a JSON
    integer in a body. The one parser behind every limit and offset."""
    if value is None:
        return default
    number = int(value) if isinstance(value, str) and DIGITS.fullmatch(value) else value
    if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= MAX_INTEGER:
        kind = "a positive" if minimum > 0 else "a non-negative"
        raise ApiError(400, f"{name} {shown(value)}: expected {kind} integer no larger than {MAX_INTEGER:,}")
    return number


def parse_limit(value: str | int | None, default: int, maximum: int) -> int:
    """Limits above the page maximum are capped (as OGC API – Features asks), not refused; absurd ones are."""
    return min(parse_integer("limit", value, 1, default), maximum)


def parse_offset(value: str | int | None) -> int:
    return parse_integer("offset", value, 0, 0)


def _json_number(value: object) -> float | None:
    """A JSON number as a float (a bool is not one; an integer too big for a float is not finite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _number(value: object) -> float | None:
    """A query's decimal text (no hex, no underscores, no 'nan' spelled as a word) or a JSON number."""
    if isinstance(value, str):
        return float(value) if NUMBER.fullmatch(value.strip()) else None
    return _json_number(value)


def _lon_lat_ok(x: float, y: float) -> bool:
    return -180 <= x <= 180 and -90 <= y <= 90


def parse_bbox(value: str | list[float] | None) -> tuple[float, float, float, float] | None:
    """minx,miny,maxx,maxy in longitude/latitude (a 6-number 3D bbox keeps its 2D part)."""
    if value is None:
        return None
    parts = _text("bbox", value).split(",") if isinstance(value, str) else list(value)
    if len(parts) not in (4, 6):
        raise ApiError(400, f"bbox {shown(value)}: expected 4 finite numbers minx,miny,maxx,maxy")
    numbers = [_number(p) for p in parts]
    if None in numbers:
        raise ApiError(400, f"bbox {shown(value)}: expected 4 comma-separated numbers minx,miny,maxx,maxy")
    if not all(math.isfinite(n) for n in numbers):
        raise ApiError(400, f"bbox {shown(value)}: expected 4 finite numbers minx,miny,maxx,maxy")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    minx, miny, maxx, maxy = numbers
    if not (_lon_lat_ok(minx, miny) and _lon_lat_ok(maxx, maxy)):
        raise ApiError(400, f"bbox {shown(value)}: longitudes must lie in [-180, 180] and latitudes in [-90, 90]")
    if minx > maxx or miny > maxy:
        raise ApiError(400, f"bbox {shown(value)}: minx must not exceed maxx nor miny maxy (antimeridian-crossing "
                            "boxes are not supported)")
    return minx, miny, maxx, maxy


def _instant(text: str, whole: str) -> datetime | None:
    """In UTC, so an offset cannot push a year outside 1-9999 later, inside the database."""
    if text in ("", ".."):
        return None
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(400, f"datetime {shown(whole)}: {shown(text)} is not an RFC 3339 date-time in the years "
                            "1-9999 UTC (e.g. 2024-05-01T00:00:00Z, or an interval start/end with '..' for open "
                            "ends)") from None


def parse_datetime(value: str | None) -> Interval | None:
    """An instant or an interval 'start/end' (either end may be '..' or empty)."""
    if value is None:
        return None
    _text("datetime", value)
    if "/" in value:
        start_text, _, end_text = value.partition("/")
        if "/" in end_text:
            raise ApiError(400, f"datetime {shown(value)}: an interval has exactly one '/'")
        start, end = _instant(start_text, value), _instant(end_text, value)
        if start is None and end is None:
            raise ApiError(400, f"datetime {shown(value)}: give at least one end of the interval")
        if start and end and start > end:
            raise ApiError(400, f"datetime {shown(value)}: the start is after the end")
        return Interval(start, end)
    instant = _instant(value, value)
    if instant is None:
        raise ApiError(400, f"datetime {shown(value)}: give a date-time or an interval")
    return Interval(instant, instant)


def check_id(kind: str, value: str) -> str:
    """A collection, item, feature or property id: at most MAX_NAME_CHARS characters."""
    if len(value) > MAX_NAME_CHARS:
        raise ApiError(400, f"{kind} {shown(value)}: longer than {MAX_NAME_CHARS} characters")
    return value


def parse_names(name: str, value: str | list[str] | None) -> list[str] | None:
    """A comma-separated query value or a JSON array of ids: at least one, at most MAX_NAMES, duplicates dropped."""
    if value is None:
        return None
    parts = value.split(",", MAX_NAMES) if isinstance(value, str) else value
    if len(parts) > MAX_NAMES:
        raise ApiError(400, f"{name}: more than {MAX_NAMES:,} entries")
    names = [check_id(f"{name} entry", p.strip()) for p in parts if p.strip()]
    if not names:
        raise ApiError(400, f"{name}: give at least one entry (leave the parameter out for all)")
    return list(dict.fromkeys(names))


def _positions(coordinates: object, depth: int) -> list[object]:
    """The positions under `depth` levels of non-empty arrays, counted level by level (never recursively, so no
    nesting depth can exhaust the stack)."""
    level = [coordinates]
    for _ in range(depth):
        if not all(isinstance(part, list) and part for part in level):
            raise ApiError(400, "intersects: coordinates are not nested as the geometry type requires")
        level = [item for part in level for item in part]
        if len(level) > MAX_VERTICES:
            raise ApiError(400, f"intersects: more than {MAX_VERTICES:,} positions; simplify the geometry")
    return level


def _check_position(position: object, index: int) -> None:
    """Quoted by index, not value: a value may be a nest too deep to print."""
    numbers = [_json_number(v) for v in position] if isinstance(position, list) and len(position) in (2, 3) \
        else [None]
    if None in numbers or not all(math.isfinite(n) for n in numbers):
        raise ApiError(400, f"intersects: position {index} is not 2 or 3 finite numbers")
    if not _lon_lat_ok(numbers[0], numbers[1]):
        raise ApiError(400, f"intersects: position {index}: longitude must lie in [-180, 180] and latitude in "
                            "[-90, 90]")


def parse_intersects(value: str | dict[str, Any] | None) -> BaseGeometry | None:
    """A GeoJSON geometry in longitude/latitude (a query's JSON text or a body's object), 2D: at most MAX_VERTICES
    positions and valid as a simple feature, else 400 with the reason."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > MAX_GEOJSON_BYTES:
            raise ApiError(400, f"intersects: longer than {MAX_GEOJSON_BYTES:,} characters")
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise ApiError(400, "intersects: not JSON (send a URL-encoded GeoJSON geometry)") from None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in GEOMETRY_DEPTHS or "coordinates" not in value:
        raise ApiError(400, f"intersects: expected a GeoJSON geometry object, one of {', '.join(GEOMETRY_DEPTHS)}")
    for index, position in enumerate(_positions(value["coordinates"], GEOMETRY_DEPTHS[kind])):
        _check_position(position, index)
    try:
        geometry = shapely.force_2d(shape(value))
    except (ValueError, TypeError, GEOSException) as exc:
        raise ApiError(400, f"intersects: not a valid {kind}: {shown(str(exc), 200)}") from None
    if not geometry.is_valid:
        raise ApiError(400, f"intersects: invalid {kind}: {shown(explain_validity(geometry), 200)}")
    return geometry
