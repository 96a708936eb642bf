"""Feed readers: turn a delivery into a RawBatch (attributes as delivered, geometry, declared CRS).

A contract's `format` picks the reader here; a new format is one reader function and one line in READERS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lake.readers.citygml import read_citygml
from lake.readers.cityjson import read_cityjson
from lake.readers.ifc import read_ifc
from lake.readers.raw_batch import RawBatch
from lake.readers.stac import read_stac_api, read_stac_catalog
from lake.readers.vector import read_vector_delivery

if TYPE_CHECKING:
    from lake.contracts import FeedContract

Reader = Callable[[str, "FeedContract"], RawBatch]

READERS: dict[str, Reader] = {
    "gpkg": read_vector_delivery,
    "shapefile": read_vector_delivery,
    "geojson": read_vector_delivery,
    "filegdb": read_vector_delivery,
    "stac_catalog": read_stac_catalog,
    "stac_api": read_stac_api,
    "ifc": read_ifc,
    "cityjson": read_cityjson,
    "citygml": read_citygml,
}


def read_delivery(source: str, contract: FeedContract) -> RawBatch:
    """Read one delivery (a local path or a URL) with the reader of the contract's format."""
    return READERS[contract.format_of(source)](source, contract)
