"""Viewer sessions: a signed cookie standing for a department token, re-checked against the token store each time.

Stateless on purpose: the cookie carries the token id, the department's id and an expiry, signed with HMAC-SHA256
under a key kept in $ONEMAP_HOME/access/session.key (mode 0600, created on first use). The server stores nothing
per session, so a session is exactly as alive as its token: revoking the token, its expiry or deleting (or
re-creating) its department refuses every session made from it at the next request. The lifetime is
ONEMAP_SESSION_HOURS (default 12), never beyond the token's own expiry.

Format: `<token id>.<department id>.<expiry, unix seconds>.<base64url HMAC of "v1|" + the first three>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lake.access.grants import Credential, TokenStore
from lake.errors import OnemapError
from lake.settings import current_settings

COOKIE_NAME = "onemap_session"
DEFAULT_HOURS = 12.0
VALUE = re.compile(r"^([0-9a-f]{12})\.([0-9a-z-]{1,40})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$")

_keys: dict[Path, bytes] = {}
_lock = threading.Lock()


def lifetime() -> timedelta:
    """How long a sign-in lasts (ONEMAP_SESSION_HOURS, default 12 h)."""
    text = os.environ.get("ONEMAP_SESSION_HOURS", str(DEFAULT_HOURS))
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not 0 < hours <= 24 * 366:
        raise OnemapError(f"ONEMAP_SESSION_HOURS={text!r}: give the session lifetime in hours (e.g. 12)")
    return timedelta(hours=hours)


def key_file() -> Path:
    return current_settings().home / "access" / "session.key"


def _create_key(path: Path) -> None:
    """Write a new random key readable by the owner only; a key another process created first wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".session-{secrets.token_hex(4)}.key")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)  # atomic and never replaces an existing key
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _key() -> bytes:
    path = key_file()
    with _lock:
        if path not in _keys:
            if not path.exists():
                _create_key(path)
            key = path.read_bytes()
            if len(key) < 32:
                raise OnemapError(f"{path} holds no usable session key; delete it (every session then ends)")
            _keys[path] = key
        return _keys[path]


def _signature(payload: str) -> str:
    digest = hmac.new(_key(), f"v1|{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def encode(token_id: str, department_id: str, expires_at: datetime) -> str:
    payload = f"{token_id}.{department_id}.{int(expires_at.timestamp())}"
    return f"{payload}.{_signature(payload)}"


def start(store: TokenStore, token: str) -> tuple[str, Credential] | None:
    """Sign in with a department token: (cookie value, the session's credential, expiring with the session), or
    None for an invalid token."""
    credential = store.authenticate(token)
    if credential is None:
        return None
    expires_at = datetime.now(UTC).replace(microsecond=0) + lifetime()  # whole seconds, as the cookie carries it
    if credential.expires_at is not None:
        expires_at = min(expires_at, credential.expires_at)
    return encode(credential.token_id, credential.department.id, expires_at), credential._replace(expires_at=expires_at)


def resume(store: TokenStore, value: str) -> Credential | None:
    """The credential a session cookie stands for (expiring with the session) if its signature holds, it has not
    expired and its token is still valid for the same department identity; else None."""
    match = VALUE.match(value)
    if not match:
        return None
    token_id, department_id, expiry, signature = match.groups()
    if not hmac.compare_digest(signature, _signature(f"{token_id}.{department_id}.{expiry}")):
        return None
    expires_at = datetime.fromtimestamp(int(expiry), UTC)
    if expires_at <= datetime.now(UTC):
        return None
    credential = store.session(token_id, department_id)
    return credential._replace(expires_at=expires_at) if credential is not None else None
