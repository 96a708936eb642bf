"""Every real survey-type public file either ingests through a contract or is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake import delta_io
from lake.contracts import get_contract
from lake.errors import FeedReadError
from lake.ingest import ingest_source
from lake.registry import BUILDINGS, DISTRICTS, QUARANTINE

OSM_BUILDINGS = """
feed: osm_buildings
table: buildings
layer: {layer}
fields:
  building_id: full_id
  name: name
  district_code: {{value: '500103'}}
"""


def rules(table: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rule in delta_io.read_table(QUARANTINE[table]).column("rule_id").to_pylist():
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def test_all_chongqing_district_files_ingest(home: Path, realdata: Path) -> None:
    contract = get_contract("chongqing_datav_districts")
    for path in sorted((realdata / "admin_boundaries").glob("cq_*.json")):
        result = ingest_source(path, contract)
        assert result.rows_quarantined == 0, (path.name, result)
    assert delta_io.read_table(DISTRICTS).num_rows == 38


def test_china_provinces_are_not_chongqing_districts(home: Path, realdata: Path) -> None:
    result = ingest_source(realdata / "admin_boundaries/china_100000_full.json", get_contract("chongqing_datav_districts"))
    assert (result.rows_read, result.rows_silver) == (35, 0)
    # 33 other provinces and the nameless 九段线 feature lie outside the region; Chongqing's own feature
    # (500000) lies inside it but is the municipality, not one of its districts
    assert rules("districts") == {"GEOM_OUTSIDE_REGION": 34, "DISTRICT_UNKNOWN": 1}


@pytest.mark.parametrize("layer, features", [("buildings", 4708), ("schools", None)])
def test_osm_geopackage_layers_outside_the_region_are_quarantined(home: Path, realdata: Path, write_contract,
                                                                  layer: str, features: int | None) -> None:
    feed = write_contract(OSM_BUILDINGS.replace("feed: osm_buildings", f"feed: osm_{layer}").format(layer=layer))
    result = ingest_source(realdata / "landuse/qgis_training_data.gpkg", get_contract(feed))
    assert result.rows_silver == 0 and result.rows_quarantined == result.rows_read > 0
    if features is not None:
        assert result.rows_read == features
    assert set(rules("buildings")) <= {"GEOM_OUTSIDE_REGION", "DUPLICATE_KEY", "REQUIRED_MISSING"}
    assert rules("buildings").get("GEOM_OUTSIDE_REGION", 0) > 0
    assert delta_io.read_table(BUILDINGS).num_rows == 0


def test_osm_lines_in_a_polygon_table_are_refused_by_type(home: Path, realdata: Path, write_contract) -> None:
    feed = write_contract(OSM_BUILDINGS.replace("feed: osm_buildings", "feed: osm_roads").format(layer="roads"))
    result = ingest_source(realdata / "landuse/qgis_training_data.gpkg", get_contract(feed))
    assert result.rows_read == 717 and rules("buildings") == {"GEOM_TYPE": 717}


def test_a_layer_the_file_does_not_have_fails_the_batch(home: Path, realdata: Path, write_contract) -> None:
    feed = write_contract(OSM_BUILDINGS.replace("feed: osm_buildings", "feed: osm_x").format(layer="parcels"))
    with pytest.raises(FeedReadError, match="no layer 'parcels'; layers: roads, restaurants, schools, buildings"):
        ingest_source(realdata / "landuse/qgis_training_data.gpkg", get_contract(feed))
