"""A sensor that starts an ingest run when a file appears or changes in landing/.

The cursor remembers each delivery's (mtime, size); a new or changed delivery requests a run of its table's
asset for its district partition. Ingestion itself is idempotent by sha256, so a touched-but-equal file is a no-op.
"""


import json
from collections import defaultdict

import dagster as dg
from dagster import SensorEvaluationContext

from lake.discovery import landing_deliveries
from lake.registry import SILVER
from orchestration.feed_assets import asset_key


def _signature(path) -> str:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return ";".join(f"{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in files)


@dg.sensor(name="landing_sensor", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Ingest new or changed files in $ONEMAP_HOME/landing/ through their feed contracts.")
def landing_sensor(context: SensorEvaluationContext) -> dg.SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    changed: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    current: dict[str, str] = {}
    for delivery in landing_deliveries():
        sig = _signature(delivery.source)
        current[str(delivery.source)] = sig
        if seen.get(str(delivery.source)) != sig:
            spec = SILVER[delivery.contract.table]
            partition = delivery.partition if "district_code" in spec.partition_by else None
            changed[(spec.name, partition)].append(f"{delivery.source}@{sig}")
    requests = [
        dg.RunRequest(run_key=f"{table}:{partition}:{hash(tuple(items))}", asset_selection=[asset_key(SILVER[table])],
                      partition_key=partition)
        for (table, partition), items in sorted(changed.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    ]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current))
