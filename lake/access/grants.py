"""Departments, their bearer tokens and their grants, in one JSON file under $ONEMAP_HOME/access/.

Deny by default: a department reads a table only through a grant naming it, only the granted columns, and, when the
grant lists districts, only rows of those districts. Tokens are shown once at issue and stored as a salted sha256
(they are 256-bit random secrets, so a slow hash adds nothing). The file is rewritten atomically (temp + rename) so a
running server never reads half a file; it is re-read whenever its bytes change, so a revoke takes effect at once.

Identity: a department is a random id created with it; its name is only a label. Tokens (and the viewer sessions
made from them) belong to the id, so deleting a department kills its tokens for good and a new department of the
same name is a stranger to them. Entries written before ids existed get a stable id derived from name and creation
time on load; a legacy token whose department no longer exists is bound to nobody.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from lake.errors import OnemapError
from lake.registry import BBOX_COLUMNS, TableSpec, get_table
from lake.settings import current_settings

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
TOKEN = re.compile(r"^omt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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
    id: str  # the identity tokens and sessions are bound to; a re-created department gets a new one
    name: str
    grants: dict[str, TableGrant]  # by table key (layer/name)
    fingerprint: str  # changes whenever the department's identity or grants change


class Credential(NamedTuple):
    """A valid token: its id, its department and when it stops being valid (None: until revoked)."""

    token_id: str
    department: Department
    expires_at: datetime | None


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _empty() -> dict[str, Any]:
    return {"departments": {}, "tokens": {}}


def _legacy_id(name: str, entry: dict[str, Any]) -> str:
    """Stable id of a department written before ids existed (the same in every process until the file is saved)."""
    return "legacy-" + hashlib.sha256(f"{name}|{entry.get('created_at', '')}".encode()).hexdigest()[:16]


def _migrate(config: dict[str, Any]) -> dict[str, Any]:
    """Give old entries an identity without reviving anything: revoked stays revoked, orphans stay unbound."""
    ids = {}
    for name, entry in config["departments"].items():
        ids[name] = entry.setdefault("id", _legacy_id(name, entry))
    for entry in config["tokens"].values():
        if "department_id" not in entry:
            entry["department_id"] = ids.get(entry["department"])
        entry.setdefault("expires_at", None)
    return config


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        return _migrate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise OnemapError(f"{path} is not valid JSON ({exc}); fix or restore it (it is only written by "
                          "`onemap access`)") from exc


def load() -> dict[str, Any]:
    path = access_file()
    return _parse(path.read_text(encoding="utf-8"), path) if path.exists() else _empty()


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


def create_department(name: str, description: str = "") -> str:
    """A new department with a new identity and no grants; returns its id."""
    if not NAME.match(name):
        raise OnemapError(f"department name {name!r}: use lower-case letters, digits, '-' or '_' (max 63)")
    config = load()
    if name in config["departments"]:
        raise OnemapError(f"department {name!r} exists already")
    department_id = secrets.token_hex(8)
    config["departments"][name] = {"id": department_id, "description": description, "created_at": _stamp(_now()),
                                   "grants": {}}
    save(config)
    return department_id


def delete_department(name: str) -> int:
    """Remove a department and revoke every token of its identity for good; returns how many were still active."""
    config = load()
    department_id = _department(config, name)["id"]
    del config["departments"][name]
    now, revoked = _stamp(_now()), 0
    for entry in config["tokens"].values():
        if entry["department_id"] == department_id and not entry.get("revoked_at"):
            entry["revoked_at"], revoked = now, revoked + 1
    save(config)
    return revoked


def ensure_department(name: str, description: str, tables: Iterable[str]) -> None:
    """Create the department if absent and grant it each table whole (every column, every district)."""
    if name not in load()["departments"]:
        create_department(name, description)
    for table in tables:
        grant(name, table)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def duration(text: str) -> timedelta:
    """`90m`, `12h`, `30d`, `2w` (also `s`) as a timedelta, for `--expires-in`."""
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise OnemapError(f"duration {text!r}: a positive number followed by s, m, h, d or w (e.g. 30d, 12h)")
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})


def issue_token(department: str, expires_in: timedelta | None = None) -> tuple[str, str]:
    """A new token for the department: (token id, token), refused everywhere after `expires_in` (None: until
    revoked). The token itself is not stored; show it once."""
    config = load()
    entry = _department(config, department)
    token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    config["tokens"][token_id] = {
        "department": department, "department_id": entry["id"], "salt": salt, "hash": _hash(salt, secret),
        "created_at": _stamp(_now()), "revoked_at": None,
        "expires_at": _stamp(_now() + expires_in) if expires_in else None}
    save(config)
    return token_id, f"omt_{token_id}_{secret}"


def revoke_token(token_id: str) -> None:
    config = load()
    match = TOKEN.match(token_id)
    token_id = match.group(1) if match else token_id  # accept the full token as well as its id
    if token_id not in config["tokens"]:
        raise OnemapError(f"no token with id {token_id!r}; `onemap access department list` shows token ids")
    entry = config["tokens"][token_id]
    entry["revoked_at"] = entry.get("revoked_at") or _stamp(_now())
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
    if spec.layer == "meta":
        raise OnemapError(f"{spec.key} is the platform's own log and cannot be granted; operators read it with "
                          "`onemap access audit` or `onemap query`")
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
    identity = json.dumps([entry["id"], entry["grants"]], sort_keys=True)
    fingerprint = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return Department(entry["id"], name, grants, fingerprint)


def _expiry(entry: dict[str, Any]) -> datetime | None:
    return datetime.fromisoformat(entry["expires_at"]) if entry.get("expires_at") else None


class TokenStore:
    """Authenticates bearer tokens (and the sessions made from them) against the access file, re-read whenever its
    bytes change (a timestamp could miss two writes within the file system's clock tick)."""

    def __init__(self) -> None:
        self._raw: bytes | None = None
        self._config: dict[str, Any] = _empty()
        self._names: dict[str, str] = {}  # department id → name
        self._departments: dict[str, Department] = {}

    def _current(self) -> dict[str, Any]:
        path = access_file()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raw = b""
        if raw != self._raw:
            config = _parse(raw.decode("utf-8"), path) if raw else _empty()
            self._config, self._raw, self._departments = config, raw, {}
            self._names = {entry["id"]: name for name, entry in config["departments"].items()}
        return self._config

    def _credential(self, token_id: str, department_id: str | None = None) -> Credential | None:
        """The token's credential if it is unrevoked, unexpired and its department (identity) still exists."""
        config = self._current()
        entry = config["tokens"].get(token_id)
        if entry is None or entry.get("revoked_at") or entry["department_id"] not in self._names:
            return None
        if department_id is not None and not hmac.compare_digest(entry["department_id"], department_id):
            return None
        expires_at = _expiry(entry)
        if expires_at is not None and expires_at <= _now():
            return None
        name = self._names[entry["department_id"]]
        if name not in self._departments:
            self._departments[name] = department(config, name)
        return Credential(token_id, self._departments[name], expires_at)

    def authenticate(self, token: str) -> Credential | None:
        """The credential of a valid token, else None."""
        match = TOKEN.match(token)
        if not match:
            return None
        entry = self._current()["tokens"].get(match.group(1))
        if entry is None or not hmac.compare_digest(entry["hash"], _hash(entry["salt"], match.group(2))):
            return None
        return self._credential(match.group(1))

    def session(self, token_id: str, department_id: str) -> Credential | None:
        """The credential behind a viewer session: its token must still be valid for the same department identity."""
        return self._credential(token_id, department_id)


def _token_state(entry: dict[str, Any]) -> str:
    if entry.get("revoked_at"):
        return f"revoked {entry['revoked_at']}"
    expires_at = _expiry(entry)
    if expires_at is None:
        return "active"
    return f"expired {entry['expires_at']}" if expires_at <= _now() else f"active until {entry['expires_at']}"


def describe() -> list[dict[str, Any]]:
    """Departments with their id, grants and token ids (never secrets), for `onemap access department list`."""
    config = load()
    tokens: dict[str, list[str]] = {}
    for token_id, entry in config["tokens"].items():
        tokens.setdefault(entry["department_id"], []).append(f"{token_id} ({_token_state(entry)})")
    return [{"department": name, "id": entry["id"], "description": entry.get("description", ""),
             "grants": entry["grants"], "tokens": tokens.get(entry["id"], [])}
            for name, entry in sorted(config["departments"].items())]
