"""The Dagster code location: `dagster dev -m orchestration.definitions` (what `onemap ui` runs)."""

from __future__ import annotations

import dagster as dg

from orchestration.landing_sensor import landing_sensor
from orchestration.survey_assets import SURVEY_ASSETS
from orchestration.survey_checks import SURVEY_CHECKS

defs = dg.Definitions(
    assets=[*SURVEY_ASSETS],
    asset_checks=[*SURVEY_CHECKS],
    sensors=[landing_sensor],
)
