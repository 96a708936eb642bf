"""The Dagster code location: `dagster dev -m orchestration.definitions` (what `onemap ui` runs)."""

from __future__ import annotations

import dagster as dg

from orchestration.landing_sensor import landing_sensor
from orchestration.feed_assets import FEED_ASSETS
from orchestration.feed_checks import FEED_CHECKS

defs = dg.Definitions(
    assets=[*FEED_ASSETS],
    asset_checks=[*FEED_CHECKS],
    sensors=[landing_sensor],
)
