"""Request dependencies: the caller's department from its bearer token or its viewer session cookie, and its
catalog of granted views."""

from __future__ import annotations

from fastapi import Depends, Request

from lake.access import sessions
from lake.access.catalog import Catalog
from lake.access.grants import Credential, Department
from twin_viewer.server.errors import ApiError
from twin_viewer.server.twin_grants import TwinAccess

SIGN_IN = ("send your department's token as 'Authorization: Bearer <token>' or sign in to the viewer at "
           "/viewer/signin (an operator issues tokens with `onemap access token issue DEPARTMENT`)")


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def credential(request: Request) -> Credential:
    """The bearer token's credential, else the session cookie's (expiring with the session); 401 when neither is
    sent or valid. A bearer token, when sent, decides alone (a bad token is not rescued by a cookie)."""
    store = request.app.state.tokens
    token = bearer_token(request)
    if token is not None:
        found = store.authenticate(token)
        if found is None:
            raise ApiError(401, "unknown, expired or revoked token; ask an operator for a new one "
                                "(`onemap access token issue DEPARTMENT`)")
        return found
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    if cookie is None:
        raise ApiError(401, SIGN_IN)
    session = sessions.resume(store, cookie)
    if session is None:
        raise ApiError(401, "your viewer session has ended (expired, or its token was revoked or its department "
                            "deleted): sign in again at /viewer/signin")
    return session


def identify(request: Request) -> None:
    """Record who sent a request refused before any handler ran (the audit still says who tried)."""
    try:
        found = credential(request)
    except ApiError:
        return
    request.state.audit.update(department=found.department.name, token_id=found.token_id)


def current_department(request: Request) -> Department:
    found = credential(request)
    request.state.audit.update(department=found.department.name, token_id=found.token_id)
    return found.department


def current_catalog(request: Request, department: Department = Depends(current_department)) -> Catalog:
    return request.app.state.catalogs.get(department)


def twin_access(department: Department = Depends(current_department)) -> TwinAccess:
    return TwinAccess(department)
