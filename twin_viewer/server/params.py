"""Query parameters shared by OGC API – Features and the STAC API: bbox, datetime, limit; 400 with the reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from twin_viewer.server.errors import ApiError


@dataclass(frozen=True)
class Interval:
    start: datetime | None
    end: datetime | None


def parse_bbox(value: str | list[float] | None) -> tuple[float, float, float, float] | None:
    """minx,miny,maxx,maxy in longitude/latitude (a 6-number 3D bbox keeps its 2D part)."""
    if value is None or value == "":
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise ApiError(400, f"bbox {value!r}: expected 4 comma-separated numbers minx,miny,maxx,maxy") from None
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise ApiError(400, f"bbox {value!r}: expected 4 finite numbers minx,miny,maxx,maxy")
    minx, miny, maxx, maxy = numbers
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
        raise ApiError(400, f"bbox {value!r}: longitudes must lie in [-180, 180] and latitudes in [-90, 90]")
    if minx > maxx or miny > maxy:
        raise ApiError(400, f"bbox {value!r}: minx must not exceed maxx nor miny maxy (antimeridian-crossing boxes "
                            "are not supported)")
    return minx, miny, maxx, maxy


def _instant(text: str, whole: str) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ApiError(400, f"datetime {whole!r}: {text!r} is not an RFC 3339 date-time (e.g. "
                            "2024-05-01T00:00:00Z, or an interval start/end with '..' for open ends)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_datetime(value: str | None) -> Interval | None:
    """An instant or an interval 'start/end' (either end may be '..' or empty)."""
    if not value:
        return None
    if "/" in value:
        start_text, _, end_text = value.partition("/")
        if "/" in end_text:
            raise ApiError(400, f"datetime {value!r}: an interval has exactly one '/'")
        start, end = _instant(start_text, value), _instant(end_text, value)
        if start is None and end is None:
            raise ApiError(400, f"datetime {value!r}: give at least one end of the interval")
        if start and end and start > end:
            raise ApiError(400, f"datetime {value!r}: the start is after the end")
        return Interval(start, end)
    instant = _instant(value, value)
    if instant is None:
        raise ApiError(400, f"datetime {value!r}: give a date-time or an interval")
    return Interval(instant, instant)


def parse_limit(value: str | int | None, default: int, maximum: int) -> int:
    """Positive; values above the maximum are capped (as OGC API – Features asks), not refused."""
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"limit {value!r}: expected a positive integer") from None
    if limit < 1:
        raise ApiError(400, f"limit {value!r}: expected a positive integer")
    return min(limit, maximum)


def parse_offset(value: str | int | None) -> int:
    if value is None or value == "":
        return 0
    try:
        offset = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"offset {value!r}: expected a non-negative integer") from None
    if offset < 0:
        raise ApiError(400, f"offset {value!r}: expected a non-negative integer")
    return offset
