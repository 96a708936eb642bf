"""API errors as OGC API exception documents ({"code", "description"}), the shape QGIS and OWSLib show."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse

CODES = {400: "InvalidParameterValue", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
         408: "Timeout", 413: "TooLarge", 500: "ServerError"}


class ApiError(HTTPException):
    """Raised by handlers; `outcome` is what the audit trail records for it."""

    def __init__(self, status: int, description: str, outcome: str | None = None) -> None:
        super().__init__(status_code=status, detail=description, headers=challenge(status))
        self.outcome = outcome or outcome_for(status)


def error_response(status: int, description: str) -> JSONResponse:
    """The exception document itself, for gates that answer before FastAPI's exception handlers can."""
    return JSONResponse({"code": CODES.get(status, str(status)), "description": description}, status,
                        headers=challenge(status))


def challenge(status: int) -> dict[str, str] | None:
    """A 401 tells the client how to authenticate."""
    return {"WWW-Authenticate": 'Bearer realm="onemap"'} if status == 401 else None


def outcome_for(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "refused"
    return "bad_request" if status < 500 else "error"


def not_granted(kind: str, name: str) -> ApiError:
    """The same 403 for a table that exists but is not granted and for one that does not exist."""
    return ApiError(403, f"{kind} {name!r} is not granted to your department or does not exist")
