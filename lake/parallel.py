"""Run a vectorised shapely function over chunks of an array on all cores.

Shapely 2 releases the GIL inside its vectorised GEOS calls, so threads give real parallelism for parsing,
validating and serialising a million geometries — the bulk of an ingest's CPU time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

MIN_CHUNK = 50_000


def map_chunks(fn: Callable[[np.ndarray], np.ndarray], values: np.ndarray) -> np.ndarray:
    """`fn(values)` computed chunk-wise in threads; small inputs run in the calling thread."""
    workers = os.cpu_count() or 1
    if workers == 1 or len(values) < 2 * MIN_CHUNK:
        return fn(values)
    chunks = np.array_split(values, workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.concatenate(list(pool.map(fn, chunks)))
