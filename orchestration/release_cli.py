"""`onemap release list|show|rollback`: see the gold releases and serve an earlier one (logic in lake.releases).

Built by a function taking the main CLI's error guard and console, so errors read the same as every other command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from lake.releases import Release


def release_line(release: Release | None) -> str:
    """One line naming the release readers are served (used by `onemap status` too)."""
    if release is None:
        return "release: none yet (gold is unpublished; run `onemap build`)"
    origin = f", rollback to {release.restores}" if release.restores else ""
    versions = ", ".join(f"{k} v{v}" for k, v in sorted(release.versions.items()))
    return (f"release {release.release_id} (build {release.build_id}{origin}, "
            f"{release.published_at:%Y-%m-%d %H:%M:%S %Z}): {versions}")


def release_app(guard: Callable, out: Console) -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, help="Gold releases: list them, show one, roll back to one.")

    @app.command("list")
    @guard
    def list_releases(limit: Annotated[int, typer.Option(help="Latest N releases.")] = 20,
                      as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Releases, newest (the one served) first."""
        from lake.releases import releases

        found = releases()[:limit]
        if as_json:
            out.print_json(json.dumps([r.as_dict() for r in found]))
            return
        table = Table()
        for column in ("release", "build", "kind", "published", "districts", "versions"):
            table.add_column(column, overflow="fold")
        for i, r in enumerate(found):
            table.add_row(r.release_id + (" (current)" if i == 0 else ""), r.build_id,
                          r.kind + (f" of {r.restores}" if r.restores else ""),
                          f"{r.published_at:%Y-%m-%d %H:%M:%S}", r.districts,
                          ", ".join(f"{k.removeprefix('gold/')} v{v}" for k, v in sorted(r.versions.items())))
        out.print(table)

    @app.command("show")
    @guard
    def show(release_id: Annotated[Optional[str], typer.Argument(metavar="[ID]", help="Default: the current "
                                                                                       "release.")] = None,
             as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """One release: build, time, each gold table's version and whether it can still be read."""
        from lake.errors import OnemapError
        from lake.releases import current_release, get_release, unreadable

        release = get_release(release_id) if release_id else current_release()
        if release is None:
            raise OnemapError("no release yet: run `onemap build` (or `onemap demo`) to publish the one map")
        problems = unreadable(release)
        if as_json:
            out.print_json(json.dumps({**release.as_dict(), "unreadable": problems}))
            return
        out.print(release_line(release), highlight=False, soft_wrap=True)
        table = Table()
        for column in ("table", "version", "readable"):
            table.add_column(column, overflow="fold")
        for key, version in sorted(release.versions.items()):
            table.add_row(key, str(version), f"no: {problems[key]}" if key in problems else "yes")
        out.print(table)

    @app.command("rollback")
    @guard
    def rollback(release_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
        """Serve release ID again, as a new release naming its versions (nothing is rewritten)."""
        from lake.releases import rollback as roll_back

        release = roll_back(release_id)
        out.print(f"now serving {release_line(release)}", highlight=False, soft_wrap=True)

    return app
