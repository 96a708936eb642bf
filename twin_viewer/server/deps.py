"""Request dependencies: the caller's department from its bearer token, and its catalog of granted views."""

from __future__ import annotations

from fastapi import Depends, Request

from lake.access.catalog import Catalog
from lake.access.grants import Department
from twin_viewer.server.errors import ApiError


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def identify(request: Request) -> None:
    """Record who sent a request refused before any handler ran (the audit still says who tried)."""
    token = bearer_token(request)
    found = request.app.state.tokens.authenticate(token) if token else None
    if found is not None:
        request.state.audit.update(department=found[1].name, token_id=found[0])


def current_department(request: Request) -> Department:
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "send your department's token as 'Authorization: Bearer <token>' "
                            "(an operator issues one with `onemap access token issue DEPARTMENT`)")
    found = request.app.state.tokens.authenticate(token)
    if found is None:
        raise ApiError(401, "unknown or revoked token; ask an operator for a new one "
                            "(`onemap access token issue DEPARTMENT`)")
    token_id, department = found
    request.state.audit.update(department=department.name, token_id=token_id)
    return department


def current_catalog(request: Request, department: Department = Depends(current_department)) -> Catalog:
    return request.app.state.catalogs.get(department)
