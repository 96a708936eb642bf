"""Gold releases: the gold table versions every reader sees, switched by one commit (DESIGN §3, "Releases").

Delta has no multi-table transaction, so a publish commits each gold table first and then appends one row to
meta/publish_log naming the versions it wrote. That append is the release's only commit point: until it lands every
reader resolves gold through the previous release, however far a crashed or running publish has moved the tables'
heads. The log row itself is the release manifest (rather than a separate manifest table) because the publish
already ends with it, it is one Delta commit, and every lake published before releases existed already holds its
releases: there is no second record of what was published that could disagree with the first.

Rows of the log that are releases: `published` (a build; its release id is the build id) and `rollback` (an
operator restored an earlier release: a new release id, the old versions, and in `gate_results` a JSON object naming
the release restored and its build). `blocked` builds are logged but are no release. The newest release is current.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import DeltaError

from lake import delta_io
from lake.errors import OnemapError
from lake.registry import PUBLISH_LOG, TableSpec, get_table

PUBLISHED, BLOCKED, ROLLBACK = "published", "blocked", "rollback"
RELEASE_STATUSES = (PUBLISHED, ROLLBACK)


class NotReleased(OnemapError):
    """A gold table that no release names yet: readers must not see it (its head is unpublished)."""

    def __init__(self, spec: TableSpec) -> None:
        super().__init__(f"{spec.key} has no published version yet: run `onemap build` (or `onemap demo`) first")


@dataclass(frozen=True)
class Release:
    release_id: str
    build_id: str  # the build whose marts the versions hold (for a rollback: the restored release's build)
    versions: dict[str, int]  # gold table key -> Delta version
    published_at: datetime
    districts: str  # what the build rebuilt ("all" or district codes); a rollback restores "all"
    restores: str | None = None  # a rollback: the release id it restored

    @property
    def kind(self) -> str:
        return ROLLBACK if self.restores else "publish"

    def as_dict(self) -> dict:
        return {"release_id": self.release_id, "build_id": self.build_id, "kind": self.kind,
                "restores": self.restores, "published_at": self.published_at.isoformat(timespec="seconds"),
                "districts": self.districts, "versions": self.versions}


def _release(row: dict, restored: dict[str, str]) -> Release:
    versions = {k: int(v) for k, v in json.loads(row["table_versions"] or "{}").items() if v is not None}
    return Release(row["build_id"], restored.get("build_id", row["build_id"]), versions, row["published_at"],
                   row["districts"], restored.get("restores"))


_cache: dict[str, tuple[tuple[str, int], list[Release]]] = {}  # log uri -> ((table id, version), releases)


def releases() -> list[Release]:
    """Every release, newest first (re-read only when the publish log has a new commit)."""
    log = delta_io.open_table(PUBLISH_LOG)
    if log is None:
        return []
    stamp = (log.metadata().id, log.version())
    hit = _cache.get(log.table_uri)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    rows = delta_io.read_snapshot(log, ["build_id", "status", "districts", "table_versions", "published_at"],
                                  pc.field("status").isin(RELEASE_STATUSES)).to_pylist()
    rollbacks = delta_io.read_snapshot(log, ["build_id", "gate_results"], pc.field("status") == ROLLBACK)
    restored = {r["build_id"]: json.loads(r["gate_results"]) for r in rollbacks.to_pylist()}
    found = [_release(r, restored.get(r["build_id"], {}))
             for r in sorted(rows, key=lambda r: (r["published_at"], r["build_id"]), reverse=True)]
    _cache[log.table_uri] = (stamp, found)
    return found


def current_release() -> Release | None:
    """The release every reader serves (None before the first publish)."""
    found = releases()
    return found[0] if found else None


def get_release(release_id: str) -> Release:
    for release in releases():
        if release.release_id == release_id:
            return release
    raise OnemapError(f"no release {release_id!r}; `onemap release list` shows them")


def version_in(release: Release | None, spec: TableSpec) -> int | None:
    """The Delta version to read `spec` at under `release` (None: nothing published yet): the release's version for
    a gold table, None (= its latest) for any other layer. Raises NotReleased for a gold table the release does not
    name: such a table must look absent to readers. Resolve every table of one query against the same Release."""
    if spec.layer != "gold":
        return None
    if release is None or spec.key not in release.versions:
        raise NotReleased(spec)
    return release.versions[spec.key]


def pinned_version(spec: TableSpec) -> int | None:
    """`version_in` the current release: what any reader of one table passes to a Delta/DuckDB/Spark read."""
    return version_in(current_release(), spec)


def gold_version(spec: TableSpec) -> int:
    """The current release's version of a gold table (NotReleased before its first publish)."""
    version = pinned_version(spec)
    if version is None:
        raise OnemapError(f"{spec.key} is not a gold table")
    return version


def read_gold(spec: TableSpec, columns: list[str] | None = None) -> pa.Table:
    """A gold table as the current release serves it."""
    return delta_io.read_table(spec, columns=columns, version=gold_version(spec))


def log_build(build_id: str, status: str, districts: Iterable[str] | None, versions: dict[str, int | None],
              gate_results: list[dict]) -> None:
    """Append a build's row to meta/publish_log in one commit; a `published` row is that release's commit point."""
    _append(build_id, status, ",".join(districts or []) or "all", versions,
            json.dumps(gate_results, ensure_ascii=False, default=str))


def _append(key: str, status: str, districts: str, versions: dict[str, int | None], gate_results: str) -> None:
    row = {"build_id": key, "status": status, "districts": districts, "table_versions": json.dumps(versions),
           "gate_results": gate_results, "published_at": datetime.now(timezone.utc)}
    delta_io.append(PUBLISH_LOG, pa.Table.from_pylist([row], schema=PUBLISH_LOG.schema))


def unreadable(release: Release) -> dict[str, str]:
    """Gold tables of `release` whose version can no longer be read (a vacuum removed its files, or log cleanup its
    commits), with the reason; empty when the whole release is readable."""
    problems = {}
    for key, version in release.versions.items():
        try:
            table = delta_io.open_table(get_table(key), version)
            if table is None:
                raise FileNotFoundError(f"no Delta table at {get_table(key).uri}")
            delta_io.dataset(table).count_rows()  # opens every data file's footer: a removed file fails here
        except (OSError, DeltaError) as exc:
            problems[key] = f"v{version}: {exc}"
    return problems


def rollback(release_id: str) -> Release:
    """Serve an earlier release again: a new release naming its versions (one commit; no data is rewritten)."""
    target = get_release(release_id)
    current = current_release()
    if current is not None and current.versions == target.versions:
        raise OnemapError(f"release {release_id} is what is served already (current release {current.release_id})")
    if problems := unreadable(target):
        detail = "; ".join(f"{k} {v}" for k, v in problems.items())
        raise OnemapError(f"cannot roll back to release {release_id}: a vacuum removed what it needs ({detail}). "
                          "Pick a newer release (`onemap release list`) or publish a new build (`onemap build`)")
    new_id = datetime.now(timezone.utc).strftime("rollback-%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:8]
    _append(new_id, ROLLBACK, "all", dict(target.versions),
            json.dumps({"restores": target.release_id, "build_id": target.build_id}))
    return get_release(new_id)
