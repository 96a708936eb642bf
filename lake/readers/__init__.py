"""Feed readers: turn a delivery into a RawBatch (attributes as delivered, geometry, declared CRS).

A contract's `format` picks the reader here; a new format is one reader function and one line in READERS.
Readers are imported when first used: IfcOpenShell, pystac and GDAL take seconds to import, and a CLI call
or a contract check should not pay for formats it does not read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lake.errors import FeedReadError
from lake.readers.raw_batch import RawBatch

if TYPE_CHECKING:
    from lake.contracts import FeedContract

Reader = Callable[[str, "FeedContract"], RawBatch]

READERS: dict[str, str] = {  # format -> "module:function"
    "gpkg": "lake.readers.vector:read_vector_delivery",
    "shapefile": "lake.readers.shapefile:read_shapefile",
    "geojson": "lake.readers.vector:read_vector_delivery",
    "filegdb": "lake.readers.vector:read_vector_delivery",
    "stac_catalog": "lake.readers.stac:read_stac_catalog",
    "stac_api": "lake.readers.stac:read_stac_api",
    "ifc": "lake.readers.ifc:read_ifc",
    "cityjson": "lake.readers.cityjson:read_cityjson",
    "citygml": "lake.readers.citygml:read_citygml",
}


def reader_for(fmt: str) -> Reader:
    module, function = READERS[fmt].split(":")
    return getattr(importlib.import_module(module), function)


def read_delivery(source: str, contract: FeedContract) -> RawBatch:
    """Read one delivery (a local path or a URL) with the reader of the contract's format.

    An empty file fails here, whatever its format: some readers would take it for an empty layer.
    """
    if "://" not in source and Path(source).is_file() and Path(source).stat().st_size == 0:
        raise FeedReadError(source, "empty file (0 bytes): it was cut off or never written; deliver it again")
    return reader_for(contract.format_of(source))(source, contract)
