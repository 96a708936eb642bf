"""Real Dagster: the landing sensor requests runs for new files, and a build materializes the survey assets."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from lake import delta_io
from lake.registry import DISTRICTS, PARCELS
from orchestration.build import build, dagster_home
from orchestration.definitions import defs
from orchestration.landing_sensor import landing_sensor
from tests.survey_files import PARCELS_CONTRACT, good_parcels, write_geojson


def test_definitions_load_with_an_asset_and_checks_per_survey_table() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"silver/districts", "silver/parcels", "silver/control_lines", "silver/hazard_points",
            "silver/buildings"} <= keys
    assert graph.get(dg.AssetKey(["silver", "parcels"])).partitions_def is not None
    assert len(graph.get(dg.AssetKey(["silver", "parcels"])).partitions_def.get_partition_keys()) == 39
    assert len(defs.asset_checks) >= 15


def test_sensor_requests_runs_for_new_and_changed_files(home: Path, realdata: Path, write_contract) -> None:
    write_contract(PARCELS_CONTRACT.replace("landing: parcels/*.geojson",
                                            "landing: parcels/*.geojson\ndistrict: {from_path: '_(\\d{6})'}"))
    (home / "landing/reference/districts").mkdir(parents=True)
    shutil.copy(realdata / "admin_boundaries/cq_500000_full.json", home / "landing/reference/districts/")
    parcels = write_geojson(home / "landing/parcels/DLTB_500112.geojson", good_parcels(5))
    with dg.instance_for_test() as instance:
        first = landing_sensor(dg.build_sensor_context(instance=instance))
        requested = {(tuple(r.asset_selection[0].path), r.partition_key) for r in first.run_requests}
        assert requested == {(("silver", "districts"), None), (("silver", "parcels"), "500112")}
        quiet = landing_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert quiet.run_requests == []
        write_geojson(parcels, good_parcels(6))
        changed = landing_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert [r.partition_key for r in changed.run_requests] == ["500112"]


def test_build_materializes_assets_and_runs_checks(home: Path, realdata: Path, write_contract) -> None:
    write_contract(PARCELS_CONTRACT)
    (home / "landing/reference/districts").mkdir(parents=True)
    shutil.copy(realdata / "admin_boundaries/cq_500000_full.json", home / "landing/reference/districts/")
    write_geojson(home / "landing/parcels/a.geojson", good_parcels(20) + [good_parcels(1)[0]])  # one duplicate key
    outcome = build("group:survey")  # the feeds; 20 test parcels cannot pass the one map's gates
    assert "silver/districts" in outcome.materialized and "silver/parcels" in outcome.materialized
    assert delta_io.read_table(DISTRICTS).num_rows == 38
    assert delta_io.read_table(PARCELS).num_rows == 19  # both occurrences of the duplicate are quarantined
    assert "silver/parcels:no_quarantined_rows" in outcome.failed_checks  # a warning, not a failure
    dagster_home()
    with dg.DagsterInstance.get() as instance:
        record = instance.get_latest_materialization_event(dg.AssetKey(["silver", "parcels"]))
        assert record is not None
        assert record.asset_materialization.metadata["rows_quarantined"].value == 2
