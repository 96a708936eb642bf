"""What the twin's tiles are made from right now: the current gold release (lake.releases) and the silver heads.

Every tile request asks for the state, so it must be cheap: on a local lake the state is re-read only when a
`_delta_log` folder of a table we use has changed (a commit adds a file there, which changes the folder's mtime);
on a remote lake at most every REMOTE_TTL_S seconds. The cache keys derived from the state (build id, silver
versions) are what makes a new publish or ingest invalidate tiles.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc

from lake import delta_io
from lake.errors import OnemapError
from lake.registry import (CONTROL_LINES, DISTRICTS, GOLD_ONE_MAP_PARCELS, HAZARD_POINTS, PARCELS,
                           PUBLISH_LOG, STAC_ASSETS, STAC_ITEMS, TableSpec)
from lake.releases import current_release
from lake.settings import current_settings

REMOTE_TTL_S = 5.0
WATCHED: tuple[TableSpec, ...] = (PUBLISH_LOG, PARCELS, CONTROL_LINES, DISTRICTS, HAZARD_POINTS, STAC_ITEMS,
                                  STAC_ASSETS)


@dataclass(frozen=True)
class LakeState:
    home: Path
    twin: Path  # Settings.twin: the viewer's built files; our caches live in its cache/ folder
    build_id: str | None  # the current release's build (None before the first publish)
    gold_versions: dict[str, int] = field(hash=False)  # the current release's versions
    silver_versions: dict[str, int | None] = field(hash=False)  # table name → head version

    @property
    def cache_dir(self) -> Path:
        return self.twin / "cache"

    def gold_version(self, spec: TableSpec) -> int:
        """The published version of a gold table, or a clear error before the first publish."""
        if self.build_id is None or spec.key not in self.gold_versions:
            raise OnemapError(f"{spec.key} has no published version yet: the twin's overlays show the published "
                              "one map, so run `onemap build` (or `onemap demo`) first")
        return self.gold_versions[spec.key]

    def silver_version(self, spec: TableSpec) -> int | None:
        return self.silver_versions.get(spec.name)


_lock = threading.Lock()
_cached: dict[str, tuple[object, float, LakeState]] = {}


def _fingerprint(lake_uri: str) -> tuple:
    root = Path(lake_uri.removeprefix("file://"))
    stamps = []
    for spec in WATCHED:
        try:
            stamps.append(os.stat(root / spec.layer / spec.name / "_delta_log").st_mtime_ns)
        except FileNotFoundError:
            stamps.append(None)
    return tuple(stamps)


def _read_state() -> LakeState:
    release = current_release()
    silver = {}
    for spec in WATCHED[1:]:
        table = delta_io.open_table(spec)
        silver[spec.name] = table.version() if table is not None else None
    settings = current_settings()
    return LakeState(settings.home, settings.twin, release.build_id if release else None,
                     release.versions if release else {}, silver)


def current_state() -> LakeState:
    settings = current_settings()
    local = settings.lake_is_local
    fingerprint = _fingerprint(settings.lake_uri) if local else None
    with _lock:
        hit = _cached.get(settings.lake_uri)
        if hit is not None and hit[2].home == settings.home and (
                hit[0] == fingerprint if local else time.monotonic() - hit[1] < REMOTE_TTL_S):
            return hit[2]
    state = _read_state()
    with _lock:
        _cached[settings.lake_uri] = (fingerprint, time.monotonic(), state)
    return state


_years: dict[tuple, list[int]] = {}


def gold_survey_year(state: LakeState) -> int:
    """The survey year of the published one map (its parcels are all of the latest year)."""
    key = ("gold", str(state.home), state.build_id)
    if key not in _years:
        years = delta_io.read_table(GOLD_ONE_MAP_PARCELS, columns=["survey_year"],
                                    version=state.gold_version(GOLD_ONE_MAP_PARCELS)).column("survey_year")
        _years[key] = [int(y) for y in pc.unique(years).to_pylist() if y is not None]
    if not _years[key]:
        raise OnemapError(f"{GOLD_ONE_MAP_PARCELS.key} of build {state.build_id} has no parcels")
    return max(_years[key])


def survey_years(state: LakeState) -> list[int]:
    """Every survey year with parcels: the published one map's and those in silver/parcels."""
    key = ("silver", str(state.home), state.silver_version(PARCELS))
    if key not in _years:
        _years[key] = [int(y) for y in pc.unique(delta_io.read_table(PARCELS, columns=["survey_year"])
                                                 .column("survey_year")).to_pylist() if y is not None]
    gold = [gold_survey_year(state)] if state.build_id is not None else []
    return sorted({*_years[key], *gold})
