"""One error type for everything a user can fix: the message names the file, row or rule and what to do."""

from __future__ import annotations


class OnemapError(Exception):
    """A failure the operator can act on; the CLI prints its message as one line (traceback only under --debug)."""


class FeedReadError(OnemapError):
    """A source file could not be read at all; its batch fails and nothing is written."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
