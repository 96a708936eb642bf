"""Departments, their bearer tokens and their grants, in one JSON file under $ONEMAP_HOME/access/.

Deny by default: a department reads a table only through a grant naming it, only the granted columns, and, when the
grant lists districts, only rows of those districts. Tokens are shown once at issue and stored as a salted sha256
(they are 256-bit random secrets, so a slow hash adds nothing). The file is rewritten atomically (temp + rename) so a
running server never reads half a file; it is re-read whenever it changes, so a revoke takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lake.errors import OnemapError
from lake.registry import BBOX_COLUMNS, TableSpec, get_table
from lake.settings import current_settings

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
TOKEN = re.compile(r"^omt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def access_file() -> Path:
    return current_settings().home / "access" / "grants.json"


@dataclass(frozen=True)
class TableGrant:
    """What one department may read of one table."""

    spec: TableSpec
    columns: tuple[str, ...]  # every readable column, in table order (bbox_* follow geometry)
    districts: tuple[str, ...] | None  # None: every district

    @property
    def has_geometry(self) -> bool:
        return "geometry" in self.columns


@dataclass(frozen=True)
class Department:
    name: str
    grants: dict[str, TableGrant]  # by table key (layer/name)
    fingerprint: str  # changes whenever the department's grants change


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _empty() -> dict[str, Any]:
    return {"departments": {}, "tokens": {}}


def load() -> dict[str, Any]:
    path = access_file()
    if not path.exists():
        return _empty()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OnemapError(f"{path} is not valid JSON ({exc}); fix or restore it (it is only written by "
                          "`onemap access`)") from exc


def save(config: dict[str, Any]) -> None:
    path = access_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".grants-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(config, handle, ensure_ascii=False, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _department(config: dict[str, Any], name: str) -> dict[str, Any]:
    try:
        return config["departments"][name]
    except KeyError:
        known = ", ".join(sorted(config["departments"])) or "none yet"
        raise OnemapError(f"no department {name!r} (known: {known}); create it with "
                          "`onemap access department create NAME`") from None


def create_department(name: str, description: str = "") -> None:
    if not NAME.match(name):
        raise OnemapError(f"department name {name!r}: use lower-case letters, digits, '-' or '_' (max 63)")
    config = load()
    if name in config["departments"]:
        raise OnemapError(f"department {name!r} exists already")
    config["departments"][name] = {"description": description, "created_at": _now(), "grants": {}}
    save(config)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def issue_token(department: str) -> tuple[str, str]:
    """A new token for the department: (token id, token). The token itself is not stored; show it once."""
    config = load()
    _department(config, department)
    token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    config["tokens"][token_id] = {"department": department, "salt": salt, "hash": _hash(salt, secret),
                                  "created_at": _now(), "revoked_at": None}
    save(config)
    return token_id, f"omt_{token_id}_{secret}"


def revoke_token(token_id: str) -> None:
    config = load()
    match = TOKEN.match(token_id)
    token_id = match.group(1) if match else token_id  # accept the full token as well as its id
    if token_id not in config["tokens"]:
        raise OnemapError(f"no token with id {token_id!r}; `onemap access department list` shows token ids")
    config["tokens"][token_id]["revoked_at"] = _now()
    save(config)


def _check_columns(spec: TableSpec, columns: list[str] | None, districts: list[str] | None) -> None:
    names = set(spec.schema.names)
    unknown = sorted(set(columns or ()) - names)
    if unknown:
        raise OnemapError(f"{spec.key} has no column {', '.join(unknown)}; its columns: {', '.join(spec.schema.names)}")
    if districts and "district_code" not in names:
        raise OnemapError(f"{spec.key} has no district_code column: grant it without --district")
    bad = [d for d in districts or () if not re.fullmatch(r"\d{6}", d)]
    if bad:
        raise OnemapError(f"district codes are 6 digits; got {', '.join(bad)}")


def _spec(table: str) -> TableSpec:
    try:
        return get_table(table)
    except KeyError as exc:
        raise OnemapError(str(exc.args[0])) from None


def grant(department: str, table: str, columns: list[str] | None = None, districts: list[str] | None = None) -> str:
    """Grant (or replace the grant of) a table; None columns = all, None districts = all. Returns the table key."""
    spec = _spec(table)
    _check_columns(spec, columns, districts)
    config = load()
    _department(config, department)["grants"][spec.key] = {
        "columns": sorted(set(columns)) if columns else None,
        "districts": sorted(set(districts)) if districts else None}
    save(config)
    return spec.key


def revoke(department: str, table: str) -> None:
    config = load()
    grants = _department(config, department)["grants"]
    key = table if table in grants else _spec(table).key  # a stale grant of a table no longer registered too
    if grants.pop(key, None) is None:
        raise OnemapError(f"department {department!r} has no grant on {table!r}; "
                          f"granted: {', '.join(grants) or 'none'}")
    save(config)


def _table_grant(spec: TableSpec, entry: dict[str, Any]) -> TableGrant:
    wanted = set(entry.get("columns") or spec.schema.names)
    if "geometry" in wanted:
        wanted |= set(BBOX_COLUMNS)  # the bbox is derived from the geometry: granting one grants the other
    columns = tuple(c for c in spec.schema.names if c in wanted)
    districts = tuple(entry["districts"]) if entry.get("districts") else None
    return TableGrant(spec, columns, districts)


def department(config: dict[str, Any], name: str) -> Department:
    entry = _department(config, name)
    grants: dict[str, TableGrant] = {}
    for key, grant_entry in entry["grants"].items():
        try:
            spec = get_table(key)
        except KeyError:
            continue  # a table dropped from the registry grants nothing
        grants[spec.key] = _table_grant(spec, grant_entry)
    fingerprint = hashlib.sha256(json.dumps(entry["grants"], sort_keys=True).encode()).hexdigest()[:16]
    return Department(name, grants, fingerprint)


class TokenStore:
    """Authenticates bearer tokens against the access file, re-reading it when its mtime changes."""

    def __init__(self) -> None:
        self._stamp: tuple[Path, int] | None = None
        self._config: dict[str, Any] = _empty()

    def _current(self) -> dict[str, Any]:
        path = access_file()
        stamp = (path, path.stat().st_mtime_ns if path.exists() else 0)
        if stamp != self._stamp:
            self._config, self._stamp = load(), stamp
        return self._config

    def authenticate(self, token: str) -> tuple[str, Department] | None:
        """(token id, department) for a valid unrevoked token, else None."""
        match = TOKEN.match(token)
        if not match:
            return None
        config = self._current()
        entry = config["tokens"].get(match.group(1))
        if entry is None or entry.get("revoked_at"):
            return None
        if not hmac.compare_digest(entry["hash"], _hash(entry["salt"], match.group(2))):
            return None
        if entry["department"] not in config["departments"]:
            return None
        return match.group(1), department(config, entry["department"])


def describe() -> list[dict[str, Any]]:
    """Departments with their grants and token ids (never secrets), for `onemap access department list`."""
    config = load()
    tokens: dict[str, list[str]] = {}
    for token_id, entry in config["tokens"].items():
        state = f"revoked {entry['revoked_at']}" if entry.get("revoked_at") else "active"
        tokens.setdefault(entry["department"], []).append(f"{token_id} ({state})")
    return [{"department": name, "description": entry.get("description", ""), "grants": entry["grants"],
             "tokens": tokens.get(name, [])} for name, entry in sorted(config["departments"].items())]
