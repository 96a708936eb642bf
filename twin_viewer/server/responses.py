"""JSON responses encoded with orjson (fast; datetimes as RFC 3339, bytes as hex), and the URLs their links carry.

Links are built from ONEMAP_PUBLIC_URL when it is set, else from the request's Host header, which `HostGuard` has
checked against ONEMAP_ALLOWED_HOSTS before any handler ran: a forged Host cannot send a client's next request (and
its token) elsewhere. X-Forwarded-Host and Forwarded are never read.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lake.errors import OnemapError
from lake.settings import Settings, current_settings, host_name
from twin_viewer.server.errors import ApiError, error_response

GEOJSON = "application/geo+json"
HOST_HEADER = re.compile(r"(?P<host>\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?")


def json_response(body: Any, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body, default=_default, option=orjson.OPT_NON_STR_KEYS), media_type=media_type)


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value)


@dataclass(frozen=True)
class HostPolicy:
    """Where links point and which Host headers the server answers to (the public URL's host among them)."""

    public_url: str | None
    allowed: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        allowed = set(settings.allowed_hosts)
        if settings.public_url is not None:
            parts = urlsplit(settings.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
                    or parts.username is not None:
                raise OnemapError(f"ONEMAP_PUBLIC_URL {settings.public_url!r}: expected http(s)://host[:port][/path]")
            allowed.add(host_name(parts.hostname))
        return cls(settings.public_url, frozenset(allowed))

    def refusal(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """Why this request's Host may not be answered, or None. Without a Host (HTTP/1.0) Starlette uses the
        socket's own address, which no client chooses."""
        hosts = [value for name, value in headers if name == b"host"]
        if not hosts:
            return None
        found = HOST_HEADER.fullmatch(hosts[0].decode("latin-1").lower()) if len(hosts) == 1 else None
        if found is None or int(found["port"] or 0) > 65535:
            return "malformed or repeated Host header"
        if found["host"] not in self.allowed:
            return ("the Host header names no host this server answers to (operators list them in "
                    "ONEMAP_ALLOWED_HOSTS or set ONEMAP_PUBLIC_URL)")
        return None


class HostGuard:
    """Answers 400 to a request with a Host outside the policy, before any handler (or redirect) can echo it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            reason = scope["app"].state.host_policy.refusal(scope["headers"])
            if reason is not None:
                audit = scope.get("state", {}).get("audit")
                if audit is not None:
                    audit["message"] = reason
                await error_response(400, reason)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_host_guard(app: FastAPI) -> None:
    """Read the policy from the settings (a bad ONEMAP_PUBLIC_URL stops the server here) and guard every request;
    install it inside the audit gate so refused requests are recorded too."""
    app.state.host_policy = HostPolicy.from_settings(current_settings())
    app.add_middleware(HostGuard)


def allow_host(app: FastAPI, host: str) -> None:
    """Also answer to the host `onemap serve --host` binds to; a wildcard address (0.0.0.0, ::) names no host."""
    try:
        if ipaddress.ip_address(host.strip("[]")).is_unspecified:
            return
    except ValueError:
        pass  # a host name
    policy: HostPolicy = app.state.host_policy
    app.state.host_policy = replace(policy, allowed=policy.allowed | {host_name(host)})


def base_url(request: Request) -> str:
    """The server's public base URL without a trailing slash; from the request only when its Host is allowed."""
    policy: HostPolicy = request.app.state.host_policy
    if policy.public_url is not None:
        return policy.public_url
    reason = policy.refusal(request.scope["headers"])
    if reason is not None:
        raise ApiError(400, reason)
    return str(request.base_url).rstrip("/")


def request_link(request: Request, **params: int) -> str:
    """This request's URL under the public base URL, with `params` replaced (self, next and prev links)."""
    url = request.url.include_query_params(**params) if params else request.url
    root = request.scope.get("root_path", "")
    path = url.path[len(root):] if root and url.path.startswith(root) else url.path
    return f"{base_url(request)}{path}" + (f"?{url.query}" if url.query else "")
