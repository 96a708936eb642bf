"""Bronze and quarantine rows: the delivery as it came (attributes as a string map, source geometry) + lineage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake.readers.raw_batch import RawBatch


@dataclass(frozen=True)
class Lineage:
    feed: str
    source_uri: str
    source_sha256: str
    batch_id: str
    ingested_at: datetime

    def columns(self, row_numbers: np.ndarray) -> dict[str, pa.Array]:
        n = len(row_numbers)
        return {
            "_feed": pa.repeat(pa.scalar(self.feed, pa.string()), n),
            "_source_uri": pa.repeat(pa.scalar(self.source_uri, pa.string()), n),
            "_source_sha256": pa.repeat(pa.scalar(self.source_sha256, pa.string()), n),
            "_batch_id": pa.repeat(pa.scalar(self.batch_id, pa.string()), n),
            "_ingested_at": pa.repeat(pa.scalar(self.ingested_at, pa.timestamp("us", tz="UTC")), n),
            "_row_number": pa.array(row_numbers, pa.int64()),
            "_row_hash": pa.nulls(n, pa.string()),
        }


def _text_column(values: pa.ChunkedArray) -> pa.Array:
    values = values.combine_chunks()
    try:
        return pc.cast(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else (v.hex() if isinstance(v, bytes) else json.dumps(v, default=str))
                         for v in values.to_pylist()], pa.string())


def attributes_map(attributes: pa.Table) -> pa.Array:
    """All delivered attributes of each row as map<string,string>, built without a per-row loop."""
    n, names = attributes.num_rows, attributes.column_names
    k = len(names)
    if k == 0:
        return pa.MapArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string()),
                                       pa.array([], pa.string()))
    column_major = pa.concat_arrays([_text_column(attributes.column(c)) for c in names])
    row_major = (np.arange(k)[None, :] * n + np.arange(n)[:, None]).ravel()
    items = column_major.take(pa.array(row_major))
    keys = pa.array(np.tile(np.array(names, dtype=object), n), pa.string())
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.MapArray.from_arrays(offsets, keys, items)


def delivered_rows(batch: RawBatch, lineage: Lineage, source_crs: str) -> pa.Table:
    """One bronze row per delivered feature, in delivery order (row numbers are 1-based)."""
    n = batch.num_rows
    return pa.table({
        "layer_name": pa.repeat(pa.scalar(batch.layer, pa.string()), n),
        "attributes": attributes_map(batch.attributes),
        "source_geometry": pa.array(batch.geometry, pa.binary()),
        "source_crs": pa.repeat(pa.scalar(source_crs, pa.string()), n),
        **lineage.columns(np.arange(1, n + 1)),
    })
