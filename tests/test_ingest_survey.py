"""Survey ingestion end to end on real Delta tables: rules, quarantine, lineage, idempotency, re-delivery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyproj
import pytest
import shapely

from lake import delta_io
from lake.contracts import get_contract
from lake.crs import wgs84_to_gcj02
from lake.errors import FeedReadError, OnemapError
from lake.ingest import ingest_source
from lake.registry import BRONZE, INGEST_LOG, PARCELS, QUARANTINE, SILVER
from tests.conftest import copy_shapefile
from tests.survey_files import PARCELS_CONTRACT, good_parcels, parcel, write_geojson


def versions() -> dict[str, int | None]:
    return {s.key: (t.version() if (t := delta_io.open_table(s)) else None)
            for s in (PARCELS, BRONZE["parcels"], QUARANTINE["parcels"])}


@pytest.fixture
def parcels_feed(home: Path, write_contract) -> str:
    return write_contract(PARCELS_CONTRACT)


def test_good_rows_land_with_lineage_and_area(home: Path, parcels_feed: str) -> None:
    path = write_geojson(home / "landing/parcels/a.geojson", good_parcels(30))
    result = ingest_source(path, get_contract(parcels_feed))
    assert (result.status, result.rows_read, result.rows_silver, result.rows_quarantined) == ("ingested", 30, 30, 0)
    silver = delta_io.read_table(PARCELS)
    assert silver.num_rows == 30
    assert set(silver.column("district_code").to_pylist()) == {"500112"}
    assert silver.column("land_class_name")[0].as_py() == "水田"  # filled from the dictionary
    assert silver.column("_row_number").to_pylist() == list(range(1, 31))
    assert set(silver.column("_source_uri").to_pylist()) == {result.source}
    assert len(set(silver.column("_source_sha256").to_pylist())) == 1
    area = silver.column("area_m2").to_numpy()
    assert ((area > 9_000) & (area < 11_500)).all()  # 0.001° squares at 29.4°N are ~ 10,700 m²
    assert pc.all(pc.equal(silver.column("net_area_m2"), pc.multiply(silver.column("area_m2"), 0.9))).as_py()
    assert delta_io.read_table(BRONZE["parcels"]).num_rows == 30


def test_bad_rows_go_to_quarantine_with_rule_and_reason(home: Path, parcels_feed: str) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[106.5, 29.5], [106.51, 29.51], [106.51, 29.5], [106.5, 29.51],
                                                 [106.5, 29.5]]]}
    features = good_parcels(5) + [
        parcel("BADCLASS", dlbm="9999"),
        parcel("NOGEOM", geometry=None),
        parcel("EMPTYGEOM", geometry={"type": "Polygon", "coordinates": []}),
        parcel("BOWTIE", geometry=bowtie),
        parcel("FAR", x=116.4, y=39.9),
        parcel("POINT", geometry={"type": "Point", "coordinates": [106.5, 29.5]}),
        parcel("DUP", x=106.6), parcel("DUP", x=106.61),
        parcel("NODISTRICT", zldwdm="990000000000"),
        parcel("", x=106.62),
    ]
    result = ingest_source(write_geojson(home / "landing/parcels/b.geojson", features), get_contract(parcels_feed))
    assert (result.rows_read, result.rows_silver, result.rows_quarantined) == (15, 5, 10)
    quarantine = delta_io.read_table(QUARANTINE["parcels"]).to_pylist()
    by_id = {dict(r["attributes"])["BSM"]: r for r in quarantine}
    expected = {"BADCLASS": "LAND_CLASS_UNKNOWN", "NOGEOM": "GEOM_MISSING", "EMPTYGEOM": "GEOM_MISSING",
                "BOWTIE": "GEOM_INVALID", "FAR": "GEOM_OUTSIDE_REGION", "POINT": "GEOM_TYPE",
                "NODISTRICT": "DISTRICT_UNKNOWN", "": "REQUIRED_MISSING"}
    for bsm, rule in expected.items():
        assert by_id[bsm]["rule_id"] == rule, (bsm, by_id[bsm]["reason"])
    assert "Self-intersection" in by_id["BOWTIE"]["reason"]
    assert "'9999'" in by_id["BADCLASS"]["reason"]
    assert [r["rule_id"] for r in quarantine if dict(r["attributes"])["BSM"] == "DUP"] == ["DUPLICATE_KEY"] * 2
    # nothing lost: every delivered row is in bronze, with its original attributes
    assert delta_io.read_table(BRONZE["parcels"]).num_rows == 15


def test_same_file_twice_is_a_no_op(home: Path, parcels_feed: str) -> None:
    path = write_geojson(home / "landing/parcels/a.geojson", good_parcels(10))
    ingest_source(path, get_contract(parcels_feed))
    before = versions()
    again = ingest_source(path, get_contract(parcels_feed))
    assert again.status == "skipped"
    assert versions() == before


def test_changed_redelivery_replaces_rows_by_key(home: Path, parcels_feed: str) -> None:
    path = write_geojson(home / "landing/parcels/a.geojson", good_parcels(10) + [parcel("X", dlbm="9999")])
    ingest_source(path, get_contract(parcels_feed))
    changed = good_parcels(8)  # two parcels dropped, the bad one fixed, one reclassified
    changed[0]["properties"]["DLBM"] = "0701"
    write_geojson(path, changed + [parcel("X", x=106.7)])
    result = ingest_source(path, get_contract(parcels_feed))
    assert result.status == "ingested"
    silver = delta_io.read_table(PARCELS)
    assert silver.num_rows == 9
    assert sorted(silver.column("parcel_id").to_pylist()) == sorted([f"P{i:05d}" for i in range(8)] + ["X"])
    assert dict(zip(silver.column("parcel_id").to_pylist(), silver.column("land_class_code").to_pylist()))["P00000"] \
        == "0701"
    assert delta_io.read_table(QUARANTINE["parcels"]).num_rows == 0
    assert delta_io.read_table(BRONZE["parcels"]).num_rows == 9
    # time travel: the first delivery is still readable
    previous = delta_io.open_table(PARCELS).version() - 1
    assert delta_io.read_table(PARCELS, version=previous).num_rows == 10


def test_reverting_a_file_to_earlier_content_restores_its_rows(home: Path, parcels_feed: str) -> None:
    path = home / "landing/parcels/a.geojson"
    original = good_parcels(5)
    write_geojson(path, original)
    ingest_source(path, get_contract(parcels_feed))
    wrong = good_parcels(5)
    wrong[0]["properties"]["DLBM"] = "0701"
    write_geojson(path, wrong)
    ingest_source(path, get_contract(parcels_feed))
    write_geojson(path, original)  # the supplier withdraws the wrong version: the same bytes as the first delivery
    assert ingest_source(path, get_contract(parcels_feed)).status == "ingested"
    silver = delta_io.read_table(PARCELS)
    classes = dict(zip(silver.column("parcel_id").to_pylist(), silver.column("land_class_code").to_pylist()))
    assert classes["P00000"] == original[0]["properties"]["DLBM"]
    assert ingest_source(path, get_contract(parcels_feed)).status == "skipped"  # and now it is current again


def test_geojson_as_bare_array_of_features(home: Path, parcels_feed: str) -> None:
    path = write_geojson(home / "landing/parcels/arr.geojson", good_parcels(3), bare_array=True)
    assert ingest_source(path, get_contract(parcels_feed)).rows_silver == 3


def test_invalid_json_fails_the_batch_and_changes_nothing(home: Path, parcels_feed: str) -> None:
    ingest_source(write_geojson(home / "landing/parcels/a.geojson", good_parcels(3)), get_contract(parcels_feed))
    before = versions()
    broken = home / "landing/parcels/broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(FeedReadError, match=r"broken.geojson: invalid JSON"):
        ingest_source(broken, get_contract(parcels_feed))
    assert versions() == before
    log = delta_io.read_table(INGEST_LOG).to_pylist()
    assert [r["status"] for r in log if r["source_uri"].endswith("broken.geojson")] == ["failed"]


def test_geojson_without_crs_is_rejected_unless_the_contract_declares_one(home: Path, write_contract) -> None:
    feed = write_contract(PARCELS_CONTRACT.replace("feed: test_parcels", "feed: no_crs").replace("crs: EPSG:4490\n", ""))
    path = write_geojson(home / "landing/parcels/a.geojson", good_parcels(3))
    with pytest.raises(FeedReadError, match="no CRS"):
        ingest_source(path, get_contract(feed))
    assert delta_io.open_table(PARCELS) is None
    declared = write_geojson(home / "landing/parcels/b.geojson", good_parcels(3), crs="urn:ogc:def:crs:EPSG::4490")
    assert ingest_source(declared, get_contract(feed)).rows_silver == 3


def test_gcj02_districts_from_real_datav_file(home: Path, realdata: Path) -> None:
    contract = get_contract("chongqing_datav_districts")
    full = ingest_source(realdata / "admin_boundaries/cq_500000_full.json", contract)
    assert (full.rows_read, full.rows_silver) == (38, 38)
    assert "repaired" in full.message  # the published boundaries have self-intersections
    single = ingest_source(realdata / "admin_boundaries/cq_500103.json", contract)  # adcode as a string there
    assert single.rows_silver == 1
    silver = delta_io.read_table(SILVER["districts"])
    assert silver.num_rows == 38
    total_km2 = sum(silver.column("area_m2").to_pylist()) / 1e6
    assert 82_000 < total_km2 < 82_800  # Chongqing: about 82,400 km²
    # GCJ-02 was undone: 渝中区 moved by the GCJ offset (hundreds of metres) against the delivered coordinates
    delivered = shapely.from_geojson(json.dumps(json.loads(
        (realdata / "admin_boundaries/cq_500103.json").read_text())["features"][0]["geometry"])).centroid
    ours = shapely.from_wkb([g for c, g in zip(silver.column("district_code").to_pylist(),
                                               silver.column("geometry").to_pylist()) if c == "500103"][0]).centroid
    shift_m = pyproj.Geod(ellps="GRS80").inv(delivered.x, delivered.y, ours.x, ours.y)[2]
    assert 200 < shift_m < 800
    offset_lon, offset_lat = wgs84_to_gcj02(np.array([ours.x]), np.array([ours.y]))
    assert pyproj.Geod(ellps="GRS80").inv(delivered.x, delivered.y, offset_lon[0], offset_lat[0])[2] < 5


def test_real_files_outside_the_region_are_quarantined_with_the_reason(home: Path, realdata: Path,
                                                                       write_contract) -> None:
    feed = write_contract("""
        feed: qgis_forest_stands
        table: parcels
        fields:
          parcel_id: StandID
          survey_year: {value: 2012}
          district_code: {value: '500101'}
          land_class_code: {value: '0301'}
        """)
    result = ingest_source(realdata / "landuse/qgis_forest_stands_2012.shp", get_contract(feed))
    assert (result.rows_read, result.rows_silver, result.rows_quarantined) == (74, 0, 74)
    reasons = delta_io.read_table(QUARANTINE["parcels"]).column("reason").to_pylist()
    assert all("outside the region" in r for r in reasons)  # Finland, reprojected from ETRS-TM35FIN


@pytest.mark.parametrize("missing", [".shx", ".dbf", ".prj"])
def test_shapefile_missing_part_is_rejected(home: Path, realdata: Path, write_contract, missing: str) -> None:
    feed = write_contract("""
        feed: stands
        table: parcels
        fields: {parcel_id: StandID, survey_year: {value: 2012}, district_code: {value: '500101'},
                 land_class_code: {value: '0301'}}
        """)
    shp = copy_shapefile(realdata / "landuse/qgis_forest_stands_2012.shp", home / "landing/stands", skip=(missing,))
    with pytest.raises(FeedReadError, match=rf"qgis_forest_stands_2012.shp: missing \{missing}"):
        ingest_source(shp, get_contract(feed))
    assert delta_io.open_table(PARCELS) is None


def test_dbf_encoding_gbk_needs_cpg_or_contract(home: Path, write_contract) -> None:
    import pyarrow as pa
    import pyogrio

    shp = home / "landing/lines/STHX.shp"
    shp.parent.mkdir(parents=True)
    geoms = shapely.to_wkb(np.array([shapely.box(106.5, 29.5, 106.6, 29.6)]))
    pyogrio.write_arrow(pa.table({"HXBH": ["L1"], "HXLX": ["生态保护红线"], "XZQDM": ["500112"],
                                  "geometry": pa.array(list(geoms), pa.binary())}),
                        shp, driver="ESRI Shapefile", crs="EPSG:4490", encoding="GBK", geometry_name="geometry",
                        geometry_type="Polygon")
    shp.with_suffix(".cpg").unlink()
    contract = """
        feed: lines{n}
        table: control_lines
        {encoding}
        fields:
          line_id: HXBH
          line_type: {{field: HXLX, map: {{生态保护红线: ecological_red_line}}}}
          district_code: XZQDM
        """
    utf8 = write_contract(contract.format(n=1, encoding=""))
    with pytest.raises(FeedReadError, match="not valid UTF-8.*GBK"):
        ingest_source(shp, get_contract(utf8))
    gbk = write_contract(contract.format(n=2, encoding="encoding: GBK"))
    result = ingest_source(shp, get_contract(gbk))
    assert result.rows_silver == 1
    assert delta_io.read_table(SILVER["control_lines"]).column("line_type").to_pylist() == ["ecological_red_line"]


def test_contract_field_missing_from_file_names_the_field(home: Path, write_contract) -> None:
    feed = write_contract(PARCELS_CONTRACT.replace("feed: test_parcels", "feed: wrong").replace("DLBM", "DLBM_X"))
    with pytest.raises(FeedReadError, match="'DLBM_X'.*not in layer"):
        ingest_source(write_geojson(home / "landing/parcels/a.geojson", good_parcels(2)), get_contract(feed))


def test_bad_contract_is_explained(home: Path, write_contract) -> None:
    write_contract("feed: broken\ntable: nosuch\nfields: {}\n")
    with pytest.raises(OnemapError, match="broken.yaml.*table 'nosuch' is not a silver table"):
        get_contract("broken")
