"""Ingest many deliveries: one batch each, a failed file does not stop the others."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lake import delta_io
from lake.discovery import Delivery, landing_deliveries, url_deliveries
from lake.errors import OnemapError
from lake.ingest import IngestResult, ingest_source, source_uri_of
from lake.registry import BRONZE, QUARANTINE, SILVER

Progress = Callable[[Delivery, int, int], None]


def ingest_deliveries(deliveries: Iterable[Delivery], progress: Progress | None = None) -> list[IngestResult]:
    deliveries = list(deliveries)
    results: list[IngestResult] = []
    for i, delivery in enumerate(deliveries):
        if progress:
            progress(delivery, i, len(deliveries))
        try:
            results.append(ingest_source(delivery.source, delivery.contract))
        except OnemapError as exc:
            results.append(IngestResult(delivery.contract.feed, source_uri_of(delivery.source), "failed", "",
                                        message=str(exc)))
    if progress and deliveries:
        progress(deliveries[-1], len(deliveries), len(deliveries))
    return results


def ingest_landing(table: str, partitions: Iterable[str] | None = None,
                   progress: Progress | None = None) -> list[IngestResult]:
    """Ingest the pending deliveries of one table: landing/ files and polled URLs (optionally only some partitions).

    The table's silver, bronze and quarantine tables exist afterwards even when nothing was delivered, so
    checks and downstream models always find them.
    """
    children = [s for s in SILVER.values() if s.parent == table]
    for spec in (SILVER[table], BRONZE[table], QUARANTINE[table], *children):
        delta_io.ensure_table(spec)
    wanted = set(partitions) if partitions is not None else None
    deliveries = [d for d in landing_deliveries(table) + url_deliveries(table)
                  if wanted is None or d.partition in wanted]
    return ingest_deliveries(deliveries, progress)
