"""A schedule that polls the imagery feeds read by URL (STAC API searches, remote static catalogs).

Files in landing/ are noticed by the landing sensor; a URL has no file to watch, so it is polled. Each tick asks
for one run of every imagery table (group `imagery`, unpartitioned) that has a URL feed; the ingest itself makes an unchanged poll a no-op (the
search result's hash) and writes only new or changed items. The cron is `ONEMAP_STAC_POLL_CRON` (default every
30 minutes), read when the code location loads.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster import ScheduleEvaluationContext

from lake.discovery import url_deliveries
from lake.registry import SILVER
from orchestration.feed_assets import asset_key

POLL_CRON = os.environ.get("ONEMAP_STAC_POLL_CRON", "*/30 * * * *")


@dg.schedule(name="stac_url_poll", cron_schedule=POLL_CRON, target=dg.AssetSelection.groups("imagery"),
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Poll the STAC API searches and other URL feeds of their contracts; ingest new or changed "
                         "items.")
def stac_url_poll(_context: ScheduleEvaluationContext) -> dg.SkipReason | list[dg.RunRequest]:
    tables = sorted({d.contract.table for d in url_deliveries() if SILVER[d.contract.table].group == "imagery"})
    if not tables:
        return dg.SkipReason("no imagery feed contract has a `url:`")
    return [dg.RunRequest(asset_selection=[asset_key(SILVER[table])], tags={"onemap/poll": table})
            for table in tables]
