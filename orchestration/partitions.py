"""District partitions: the region's 38 district codes plus the region code for region-wide deliveries."""

from __future__ import annotations

import dagster as dg

from lake.contracts import REGION_PARTITION
from lake.domain import district_codes

DISTRICT_PARTITIONS = dg.StaticPartitionsDefinition([*district_codes(), REGION_PARTITION])
