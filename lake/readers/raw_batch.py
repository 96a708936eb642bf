"""What every reader returns: the delivery as it is, before any mapping or validation."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from lake.errors import FeedReadError, escaped_path


@dataclass
class RawBatch:
    """One delivery as read. Readers of sources that are not local files (APIs) set `sha256` themselves;
    readers of incremental sources set `row_hashes` so unchanged rows are not rewritten; readers that also
    produce rows of child tables (STAC assets of an item, the mesh of a building) put them in `children`, each
    with a `_parent_row` column (1-based row number of the parent in this batch). Readers that judge rows
    themselves (e.g. a STAC item failing its JSON schema) set `row_problems`: per row None or (rule_id, reason);
    the ingest quarantines those rows under that rule before any other check."""

    source: Path | str
    layer: str
    attributes: pa.Table  # delivered attribute columns, one row per feature, in delivery order
    geometry: np.ndarray  # WKB bytes (object array, None where the feature has no geometry)
    crs: str | None  # the CRS the source declares (EPSG code or WKT), None when it declares none
    sha256: str | None = None
    row_hashes: np.ndarray | None = None
    children: dict[str, pa.Table] = field(default_factory=dict)
    row_problems: np.ndarray | None = None  # object array: None or (rule_id, reason) per row

    @property
    def num_rows(self) -> int:
        return len(self.geometry)


def delivery_files(path: Path) -> list[Path]:
    """The files that make one delivery: a shapefile with its sidecars, a FileGDB folder's files, or the file."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    if path.suffix.lower() == ".shp":
        return sorted(p for p in path.parent.glob(path.stem + ".*") if p.suffix.lower() in
                      {".shp", ".shx", ".dbf", ".prj", ".cpg"})
    return [path]


def delivery_sha256(path: Path) -> str:
    """Content hash of a delivery (names and bytes of all its files), so a re-delivery is recognised."""
    digest = hashlib.sha256()
    for file in delivery_files(path):
        # os.fsencode: the same bytes as .encode() for UTF-8 names, and no crash on names that are not
        digest.update(os.fsencode(file.relative_to(path if path.is_dir() else path.parent).as_posix().lower()))
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def require_utf8_name(path: Path) -> None:
    """Lineage (`_source_uri`) and the ingest log are UTF-8 text, so a delivery whose path is not valid UTF-8 is
    refused by its escaped name, with the rename that fixes it (names from Chinese Windows are often GBK)."""
    if escaped_path(path) == str(path):
        return
    hint = ""
    if escaped_path(path.name) != path.name:
        try:
            hint = f" (read as GBK it is {os.fsencode(path.name).decode('gbk')!r})"
        except UnicodeDecodeError:
            pass
    raise FeedReadError(path, f"the file name is not valid UTF-8{hint}; rename it to UTF-8 (e.g. `convmv -f GBK "
                              "-t UTF-8 --notest FILE`) and deliver it again")
