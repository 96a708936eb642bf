"""Great Expectations 1.x suites for the tabular rules of the marts, run on pandas batches.

GX 1.24 over DuckDB through duckdb-engine silently returns wrong results (DESIGN §10), so the marts are read
from DuckDB into pandas first; tests hold a failing expectation to failing.
"""

from __future__ import annotations

import logging
import os

import duckdb
import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd

from lake.domain import land_classes
from quality.catalog import rules
from quality.results import RuleResult
from quality.spatial_rules import in_districts

STATUSES = ["met", "at risk", "breached", "unknown"]
INDICATORS = ("development_intensity", "cultivated_land_area", "permanent_basic_farmland_area",
              "ecological_red_line_area", "urban_rural_construction_land", "forest_cover")


def _suites() -> dict[str, tuple[str, str, list]]:
    """rule id -> (mart, columns read, expectations)."""
    return {
        "GX_ONE_MAP_PARCELS": ("one_map_parcels", "parcel_id, district_code, land_class_code, three_category, "
                               "area_m2, net_area_m2", [
            gxe.ExpectColumnValuesToNotBeNull(column="parcel_id"),
            gxe.ExpectColumnValuesToBeUnique(column="parcel_id"),
            gxe.ExpectColumnValuesToMatchRegex(column="district_code", regex=r"^50\d{4}$"),
            gxe.ExpectColumnValuesToBeInSet(column="land_class_code", value_set=sorted(land_classes())),
            gxe.ExpectColumnValuesToBeInSet(column="three_category",
                                            value_set=["agricultural", "construction", "unused"]),
            gxe.ExpectColumnValuesToBeBetween(column="area_m2", min_value=0, strict_min=True),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="area_m2", column_B="net_area_m2",
                                                        or_equal=True),
        ]),
        "GX_CONTROL_LINE_CONFLICTS": ("control_line_conflicts", "conflict_id, severity, area_m2", [
            gxe.ExpectColumnValuesToBeUnique(column="conflict_id"),
            gxe.ExpectColumnValuesToBeInSet(column="severity", value_set=["error", "warn"]),
            gxe.ExpectColumnValuesToBeBetween(column="area_m2", min_value=0, strict_min=True),
        ]),
        "GX_DISTRICT_INDICATORS": ("district_indicators", "*", [
            gxe.ExpectTableRowCountToEqual(value=39),
            gxe.ExpectColumnValuesToBeUnique(column="district_code"),
            *(gxe.ExpectColumnValuesToBeInSet(column=f"{i}_status", value_set=STATUSES) for i in INDICATORS),
            *(gxe.ExpectColumnValuesToNotBeNull(column=f"{i}_target") for i in INDICATORS),
        ]),
    }


def validate_frame(rule_id: str, frame: pd.DataFrame, expectations: list) -> RuleResult:
    """Validate one pandas frame against a suite; each failed expectation is a sample naming what failed."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    os.environ.setdefault("TQDM_DISABLE", "1")  # GX progress bars would flood Dagster and CLI logs
    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_pandas(name=rule_id).add_dataframe_asset(name=rule_id)
             .add_batch_definition_whole_dataframe(rule_id).get_batch(batch_parameters={"dataframe": frame}))
    suite = gx.ExpectationSuite(name=rule_id, expectations=list(expectations))
    outcome = batch.validate(suite)
    failed = []
    for r in outcome.results:
        if r.success:
            continue
        config = r.expectation_config
        detail = r.result.get("partial_unexpected_list") or r.result.get("observed_value")
        failed.append({"expectation": f"{config.type}({config.kwargs.get('column', '')})",
                       "detail": f"{r.result.get('unexpected_count', '')} unexpected; e.g. {str(detail)[:200]}"})
    return RuleResult(rules()[rule_id], len(failed), failed)


def run_gx_suites(con: duckdb.DuckDBPyConnection, districts: list[str] | None = None) -> list[RuleResult]:
    results = []
    for rule_id, (mart, columns, expectations) in _suites().items():
        where = "" if mart == "district_indicators" else f"where {in_districts('district_code', districts)}"
        results.append(validate_frame(rule_id, con.sql(f"select {columns} from {mart} {where}").df(), expectations))
    return results
