"""Find deliveries in landing/ that a feed contract covers, and the contract for a given path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lake.contracts import FeedContract, load_contracts
from lake.errors import OnemapError
from lake.settings import current_settings

# Sidecar files belong to the .shp they sit beside; FileGDB internals to their .gdb folder.
_SIDECARS = {".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".xml"}


@dataclass(frozen=True)
class Delivery:
    """One thing to ingest: a file or folder under landing/ (or given on the command line), or a feed's URL."""

    source: Path | str
    contract: FeedContract

    @property
    def name(self) -> str:
        return self.source.name if isinstance(self.source, Path) else str(self.source)

    @property
    def partition(self) -> str:
        return self.contract.partition_of(Path(str(self.source)))


def landing_deliveries(table: str | None = None) -> list[Delivery]:
    """Every file under landing/ matched by a contract (optionally of one table), in a stable order."""
    landing = current_settings().landing
    found: dict[Path, Delivery] = {}
    for contract in load_contracts().values():
        if table is not None and contract.table != table:
            continue
        for pattern in contract.landing:
            for path in sorted(landing.glob(pattern)):
                if path.suffix.lower() not in _SIDECARS and path not in found:
                    found[path] = Delivery(path, contract)
    return sorted(found.values(), key=lambda d: (d.contract.feed, str(d.source)))


def url_deliveries(table: str | None = None) -> list[Delivery]:
    """Feeds polled by URL (e.g. a STAC API search), one delivery each."""
    return [Delivery(c.url, c) for c in load_contracts().values()
            if c.url is not None and (table is None or c.table == table)]


def is_folder_delivery(path: Path) -> bool:
    """A FileGDB (.gdb) or a static STAC catalog (a folder with catalog.json) is delivered as one folder."""
    return path.is_dir() and (path.suffix.lower() == ".gdb" or (path / "catalog.json").is_file())


def expand_paths(paths: list[Path]) -> list[Path]:
    """Folders expand to the deliveries inside them; folder deliveries (FileGDB, STAC catalog) stay whole."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir() and not is_folder_delivery(path):
            inside: list[Path] = []
            for p in sorted(path.rglob("*")):
                if any(is_folder_delivery(q) for q in p.parents if q != path and path in q.parents):
                    continue  # part of a folder delivery found above
                if is_folder_delivery(p) or (p.is_file() and p.suffix.lower() not in _SIDECARS):
                    inside.append(p)
            out += inside
        else:
            out.append(path)
    return out


def contract_for(path: Path, feed: str | None = None) -> FeedContract:
    """The named feed's contract, or the one whose landing pattern matches the path."""
    contracts = load_contracts()
    if feed is not None:
        if feed not in contracts:
            raise OnemapError(f"no feed contract named {feed!r}; known feeds: {', '.join(sorted(contracts))}")
        return contracts[feed]
    landing = current_settings().landing
    try:
        relative = path.resolve().relative_to(landing.resolve()).as_posix()
    except ValueError:
        relative = None
    matches = [c for c in contracts.values() if relative is not None and c.matches(relative)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise OnemapError(f"{path}: no feed contract covers this file; pass --feed NAME or add a contract "
                          f"under {current_settings().feeds_dir}")
    raise OnemapError(f"{path}: several feed contracts match ({', '.join(c.feed for c in matches)}); pass --feed")
