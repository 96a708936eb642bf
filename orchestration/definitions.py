"""The Dagster code location: `dagster dev -m orchestration.definitions` (what `onemap ui` runs)."""

from __future__ import annotations

import dagster as dg

from orchestration.landing_sensor import landing_sensor
from orchestration.feed_assets import FEED_ASSETS
from orchestration.feed_checks import FEED_CHECKS
from orchestration.one_map_assets import ONE_MAP_ASSETS, ONE_MAP_RESOURCES
from orchestration.stac_schedule import stac_url_poll
from orchestration.twin_assets import TWIN_ASSETS

defs = dg.Definitions(
    assets=[*FEED_ASSETS, *ONE_MAP_ASSETS, *TWIN_ASSETS],
    asset_checks=[*FEED_CHECKS],
    sensors=[landing_sensor],
    schedules=[stac_url_poll],
    resources=ONE_MAP_RESOURCES,
)
