"""Errors the server maps to HTTP statuses: a bad tile address (400/404), an unknown layer or year (404)."""

from __future__ import annotations


class TileAddressError(ValueError):
    """z/x/y is not a Web-Mercator XYZ tile (negative, x or y ≥ 2^z, z beyond MAX_ZOOM)."""


class UnknownLayerError(KeyError):
    """A layer name or survey year the twin does not have; the message lists what exists."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""
