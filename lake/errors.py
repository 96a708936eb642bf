"""One error type for everything a user can fix: the message names the file, row or rule and what to do."""

from __future__ import annotations

import os


class OnemapError(Exception):
    """A failure the operator can act on; the CLI prints its message as one line (traceback only under --debug)."""


class FeedReadError(OnemapError):
    """A source file could not be read at all; its batch fails and nothing is written.

    The message is one line (library messages can span several) and the source is escaped (`escaped_path`), so the
    message can be printed and written to the ingest log whatever bytes the file name has.
    """

    def __init__(self, source: str | os.PathLike[str], reason: str) -> None:
        self.source = escaped_path(source)
        self.reason = " ".join(reason.split())
        super().__init__(f"{self.source}: {self.reason}")


def escaped_path(path: str | os.PathLike[str]) -> str:
    """A path as valid UTF-8 text: bytes of the name that are not UTF-8 become backslash escapes (\\xb5).

    Linux file names are bytes; Python carries undecodable ones as lone surrogates, which no UTF-8 writer (Arrow,
    Delta, a terminal) accepts. URLs and valid names come back unchanged.
    """
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")
