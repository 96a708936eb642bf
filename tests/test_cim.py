"""CIM/BIM feeds end to end: IFC, CityJSON and CityGML files into silver.buildings and silver.building_meshes."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely

from lake import delta_io
from lake.contracts import get_contract
from lake.demo_cim import houses, write_demo_cim
from lake.errors import FeedReadError
from lake.ingest import ingest_source
from lake.meshes import decode, triangle_areas
from lake.registry import BRONZE, BUILDING_MESHES, BUILDINGS, INGEST_LOG, QUARANTINE

FIELDS = """
fields:
  building_id: id
  name: name
  function: function
  storeys: storeys
  height_m: height
  lod: lod
  source_format: source_format
  district_code: {value: "500103"}
"""


def land(home: Path, src: Path, folder: str = "reference") -> Path:
    dest = home / "landing" / folder / src.parent.name / src.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dest)
    return dest


def buildings() -> dict[str, dict]:
    return {r["building_id"]: r for r in delta_io.read_table(BUILDINGS).to_pylist()}


def meshes() -> dict[tuple[str, str], dict]:
    return {(r["building_id"], r["lod"]): r for r in delta_io.read_table(BUILDING_MESHES).to_pylist()}


def lake_versions() -> dict[str, int | None]:
    return {s.key: (t.version() if (t := delta_io.open_table(s)) else None)
            for s in (BUILDINGS, BUILDING_MESHES, BRONZE["buildings"], QUARANTINE["buildings"])}


def footprint_m(row: dict, epsg: int = 25832) -> shapely.Geometry:
    """A silver footprint (CGCS2000 lon/lat) in a metric CRS, to compare shapes and areas."""
    to_metric = pyproj.Transformer.from_crs(4490, epsg, always_xy=True)
    return shapely.transform(shapely.from_wkb(row["geometry"]), lambda c: np.column_stack(to_metric.transform(
        c[:, 0], c[:, 1])))


def open_edges(mesh: dict) -> float:
    """Share of mesh edges used by only one triangle (0 for a closed surface), matched on mm-rounded positions."""
    positions, triangles = decode(mesh["positions"], mesh["indices"])
    keys = np.unique(np.round(positions.astype(np.float64), 3), axis=0, return_inverse=True)[1].ravel()
    edges = np.sort(np.stack([keys[triangles[:, [0, 1, 2]]], keys[triangles[:, [1, 2, 0]]]], -1).reshape(-1, 2), 1)
    counts = Counter(map(tuple, edges))
    return sum(1 for c in counts.values() if c == 1) / len(counts)


def assert_clean_mesh(mesh: dict) -> None:
    positions, triangles = decode(mesh["positions"], mesh["indices"])
    assert len(positions) == mesh["vertex_count"] and len(triangles) == mesh["triangle_count"] > 0
    assert triangles.max() < len(positions)
    assert triangle_areas(positions.astype(np.float64), triangles.astype(np.int64)).min() > 1e-7
    assert np.abs(positions).max() < 500  # ENU around the building's own origin: metres, not map coordinates


# --- the real reference files ----------------------------------------------------------------------------------
def test_fzk_haus_ifc_is_one_building_near_karlsruhe(home: Path, realdata: Path) -> None:
    result = ingest_source(land(home, realdata / "bim_ifc/AC20-FZK-Haus.ifc"), get_contract("cim_fzk_haus_ifc"))
    assert (result.rows_read, result.rows_silver, result.rows_quarantined) == (1, 1, 0)
    row = buildings()["2hQBAVPOr5VxhS3Jl0O47h"]
    assert (row["name"], row["function"], row["storeys"], row["lod"], row["source_format"]) == (
        "FZK-Haus", "Wohnhaus", 2, "BIM", "IFC4")
    assert 6.0 < row["height_m"] < 7.0 and 120 < row["area_m2"] < 160
    centre = shapely.from_wkb(row["geometry"]).centroid
    assert abs(centre.y - 49.100) < 0.01 and abs(centre.x - 8.437) < 0.01
    mesh = meshes()[("2hQBAVPOr5VxhS3Jl0O47h", "BIM")]
    assert_clean_mesh(mesh)
    assert 5_000 < mesh["vertex_count"] < 50_000
    assert 105 < mesh["origin_height"] < 115  # RefElevation 110 m, the ground floor slab a little below


def test_ifc_map_conversion_utm_sample(home: Path, realdata: Path) -> None:
    src = land(home, realdata / "bim_ifc/bsi_ifc4x3_geographic-referencing-utm.ifc")
    assert ingest_source(src, get_contract("cim_reference_ifc")).rows_silver == 1
    row = buildings()["0cVTYHAI3nGeTXA2X4Gxyo"]
    assert row["source_crs"] == "EPSG:25832" and row["source_format"] == "IFC4X3_ADD2"
    # the 1 m notch stands at E 458657.30 N 5438232.25 (the file's Scale 1000 is a units mix-up, ignored)
    utm = footprint_m(row)
    assert utm.centroid.distance(shapely.Point(458657.30, 5438232.25)) < 1.0
    assert abs(utm.area - 1.0) < 0.01 and abs(row["height_m"] - 4.0) < 0.01
    assert meshes()[("0cVTYHAI3nGeTXA2X4Gxyo", "BIM")]["origin_height"] == pytest.approx(113.7)


def test_citygml_samples_ingest_one_building_each(home: Path, realdata: Path) -> None:
    contract = get_contract("cim_reference_citygml")
    files = sorted((realdata / "cim_citygml").glob("*.gml"))
    for src in files:
        result = ingest_source(land(home, src), contract)
        assert (result.rows_read, result.rows_silver) == (1, 1), (src.name, result.message)
    rows = buildings()
    assert set(rows) == {"UUID_d281adfc-4901-0f52-540b-4cc1a9325f82", "GML_7b1a5a6f-ddad-4c3d-a507-3eb9ee0a8e68",
                         "DEBY_LOD2_5744682"}  # FZK-Haus LoD1-3 and the two CityGML 3.0 files: same building
    assert rows["GML_7b1a5a6f-ddad-4c3d-a507-3eb9ee0a8e68"]["source_crs"] == "EPSG:25832"  # compound URN
    assert rows["DEBY_LOD2_5744682"]["source_crs"] == "EPSG:31468"  # urn:adv:crs:DE_DHDN_3GK4*DE_DHHN92_NH
    for row in rows.values():
        centre = shapely.from_wkb(row["geometry"]).centroid
        assert 47 < centre.y < 50 and 8 < centre.x < 12.5
    mesh_rows = meshes()
    fzk = "UUID_d281adfc-4901-0f52-540b-4cc1a9325f82"
    assert {lod for (bid, lod) in mesh_rows if bid == fzk} == {"LoD1", "LoD2", "LoD3"}
    assert mesh_rows[("GML_7b1a5a6f-ddad-4c3d-a507-3eb9ee0a8e68", "LoD2")]["height_reference"] == "EPSG:5783"
    for mesh in mesh_rows.values():
        assert_clean_mesh(mesh)
    assert open_edges(mesh_rows[(fzk, "LoD1")]) == 0  # a closed LoD1 block
    assert open_edges(mesh_rows[(fzk, "LoD2")]) < 0.1


def test_fzk_haus_ifc_and_citygml_footprints_agree(home: Path, realdata: Path, write_contract) -> None:
    """The same building from IFC and CityGML; overlap = IoU (intersection / union) in UTM 32N.

    As delivered the two are ~420 m apart and turned 50° to each other: the CityGML was moved by GMLOffset.xslt
    (its header says so) and its IFC→CityGML converter ignored the IFC's TrueNorth, while the IFC reader honours
    the IfcSite point and TrueNorth. So: as delivered, same neighbourhood and same area; placed the way the
    CityGML was made (model origin at the CityGML's origin E 458877 N 5438353, model +Y = north, via a contract
    placement override), the footprints coincide.
    """
    src = land(home, realdata / "bim_ifc/AC20-FZK-Haus.ifc")
    ingest_source(src, get_contract("cim_fzk_haus_ifc"))
    as_delivered = footprint_m(buildings()["2hQBAVPOr5VxhS3Jl0O47h"])
    ingest_source(land(home, realdata / "cim_citygml/3dcitydb_FZK-House-LoD3-KIT-IAI-KHH-V2.gml"),
                  get_contract("cim_reference_citygml"))
    lod3 = footprint_m(buildings()["UUID_d281adfc-4901-0f52-540b-4cc1a9325f82"])
    assert as_delivered.centroid.distance(lod3.centroid) < 1_000
    assert abs(as_delivered.area / lod3.area - 1) < 0.01  # both with the roof overhang: 13 m x 11 m

    lon, lat = pyproj.Transformer.from_crs(25832, 4490, always_xy=True).transform(458877, 5438353)
    feed = write_contract(f"feed: fzk_as_citygml\ntable: buildings\nformat: ifc\nlanding: x/*.ifc\n"
                          f"region_check: 'off'\noptions: {{placement: {{lon: {lon}, lat: {lat}, height: 0, "
                          f"rotation_deg: 0, override: true}}}}\n" + FIELDS.replace("building_id: id",
                                                                                     "building_id: name"))
    ingest_source(src, get_contract(feed))
    ifc = footprint_m(buildings()["FZK-Haus"])
    assert ifc.intersection(lod3).area / ifc.union(lod3).area > 0.95
    ingest_source(land(home, realdata / "cim_citygml/3dcitydb_FZK-House-LoD2-KIT-IAI-KHH-V2.gml"),
                  get_contract("cim_reference_citygml"))
    lod2 = footprint_m(buildings()["UUID_d281adfc-4901-0f52-540b-4cc1a9325f82"])  # walls only: inside the IFC's
    assert ifc.intersection(lod2).area / lod2.area > 0.99 and ifc.intersection(lod2).area / ifc.union(lod2).area > 0.8


def test_cityjson_samples(home: Path, realdata: Path) -> None:
    contract = get_contract("cim_reference_cityjson")
    expected = {"cjio_rotterdam_one.json": 1, "cjio_rotterdam_subset.json": 16, "cjio_DH_01_subs.city.json": 4}
    for name, count in expected.items():
        result = ingest_source(land(home, realdata / "cim_cityjson" / name), contract)
        assert (result.rows_read, result.rows_silver) == (count, count), (name, result)
    rows = buildings()  # Den Haag: 4 Buildings whose 8 BuildingParts are merged into their meshes
    assert len(rows) == 20  # rotterdam_one's building is also in the subset: one row, by its id
    for row in rows.values():
        centre = shapely.from_wkb(row["geometry"]).centroid
        assert 51.9 < centre.y < 52.2 and 4.2 < centre.x < 4.6  # Rotterdam / Den Haag
        assert row["source_crs"] == "EPSG:28992" and row["lod"] == "LoD2"
    for mesh in meshes().values():
        assert_clean_mesh(mesh)
        assert mesh["height_reference"] == "EPSG:5709"  # NAP height of the compound EPSG:7415


# --- bad input -------------------------------------------------------------------------------------------------
def test_cityjson_without_crs_is_rejected_unless_the_contract_gives_one(home: Path, realdata: Path,
                                                                        write_contract) -> None:
    feed = write_contract("feed: cj_no_crs\ntable: buildings\nformat: cityjson\nlanding: x/*.json\n"
                          "region_check: 'off'\n" + FIELDS)
    src = land(home, realdata / "cim_cityjson/cjio_rotterdam_subset.json")
    with pytest.raises(FeedReadError, match=r"cjio_rotterdam_subset\.json: no CRS.*add `crs:`"):
        ingest_source(src, get_contract(feed))
    assert lake_versions()[BUILDINGS.key] is None
    assert ingest_source(src, get_contract("cim_reference_cityjson")).rows_silver == 16


def test_cityjson_zero_objects_invalid_json_and_schema(home: Path, realdata: Path) -> None:
    contract = get_contract("cim_reference_cityjson")
    with pytest.raises(FeedReadError, match=r"cjio_minimal\.json: no Building among its 0 CityObjects"):
        ingest_source(land(home, realdata / "cim_cityjson/cjio_minimal.json"), contract)
    broken = home / "landing/reference/cim_cityjson/broken.json"
    broken.write_text('{"type": "CityJSON", "version": "2.0", "CityObjects": {', encoding="utf-8")
    with pytest.raises(FeedReadError, match=r"broken\.json: not valid JSON"):
        ingest_source(broken, contract)
    document = json.loads((realdata / "cim_cityjson/cjio_rotterdam_one.json").read_text(encoding="utf-8"))
    next(iter(document["CityObjects"].values()))["geometry"][0]["lod"] = []  # not a LoD
    invalid = home / "landing/reference/cim_cityjson/invalid.json"
    invalid.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(FeedReadError, match=r"invalid\.json: not valid CityJSON 1\.1 \(schema\) at CityObjects"):
        ingest_source(invalid, contract)
    log = delta_io.read_table(INGEST_LOG).to_pylist()
    assert [r["status"] for r in log] == ["failed"] * 3 and delta_io.open_table(BUILDINGS) is None


def test_citygml_without_crs_is_rejected_unless_the_contract_gives_one(home: Path, realdata: Path,
                                                                       write_contract) -> None:
    text = (realdata / "cim_citygml/ogc_citygml2_Building_LOD2-EPSG25832.gml").read_text(encoding="utf-8")
    src = home / "landing/x/no_srs.gml"
    src.parent.mkdir(parents=True)
    src.write_text(text.replace('srsName="urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::5783"', ""), encoding="utf-8")
    bare = write_contract("feed: gml_bare\ntable: buildings\nformat: citygml\nlanding: x/*.gml\n"
                          "region_check: 'off'\n" + FIELDS)
    with pytest.raises(FeedReadError, match=r"no_srs\.gml: no CRS"):
        ingest_source(src, get_contract(bare))
    with_crs = write_contract("feed: gml_crs\ntable: buildings\nformat: citygml\nlanding: y/*.gml\ncrs: EPSG:25832\n"
                              "region_check: 'off'\n" + FIELDS)
    assert ingest_source(src, get_contract(with_crs)).rows_silver == 1
    assert buildings()["GML_7b1a5a6f-ddad-4c3d-a507-3eb9ee0a8e68"]["source_crs"] == "EPSG:25832"


def test_truncated_ifc_fails_and_changes_nothing(home: Path, realdata: Path) -> None:
    contract = get_contract("cim_reference_ifc")
    good = land(home, realdata / "bim_ifc/bsi_ifc4x3_geographic-referencing-utm.ifc")
    ingest_source(good, contract)
    before = lake_versions()
    data = (realdata / "bim_ifc/AC20-FZK-Haus.ifc").read_bytes()
    truncated = home / "landing/reference/bim_ifc/truncated.ifc"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(FeedReadError, match=r"truncated\.ifc: truncated IFC"):
        ingest_source(truncated, contract)
    garbage = home / "landing/reference/bim_ifc/garbage.ifc"
    garbage.write_text("ISO-10303-21;\nHEADER;\nnot STEP at all\nEND-ISO-10303-21;\n", encoding="ascii")
    with pytest.raises(FeedReadError, match=r"garbage\.ifc: not readable as IFC"):
        ingest_source(garbage, contract)
    assert lake_versions() == before


def test_ifc_without_georeference_needs_a_contract_placement(home: Path, realdata: Path, write_contract) -> None:
    src = land(home, realdata / "bim_ifc/IfcOpenHouse_IFC4.ifc")
    bare = write_contract("feed: ifc_bare\ntable: buildings\nformat: ifc\nlanding: x/*.ifc\n" + FIELDS)
    with pytest.raises(FeedReadError, match=r"IfcOpenHouse_IFC4\.ifc: no georeference.*options\.placement"):
        ingest_source(src, get_contract(bare))
    placed = write_contract("feed: ifc_placed\ntable: buildings\nformat: ifc\nlanding: y/*.ifc\n"
                            "options: {placement: {lon: 106.571, lat: 29.561, height: 250, rotation_deg: 30}}\n"
                            + FIELDS)
    result = ingest_source(src, get_contract(placed))
    assert (result.rows_read, result.rows_silver) == (1, 1)
    row = next(iter(buildings().values()))
    centre = shapely.from_wkb(row["geometry"]).centroid
    assert abs(centre.x - 106.571) < 0.0005 and abs(centre.y - 29.561) < 0.0005  # a house-sized model there
    assert meshes()[(row["building_id"], "BIM")]["origin_height"] == pytest.approx(250, abs=2)


def test_ifc4x3_rc2_road_model_is_read_but_has_no_building(home: Path, realdata: Path) -> None:
    src = land(home, realdata / "bim_ifc/KIT-Simple-Road-Test-Web-IFC4x3_RC2.ifc")
    with pytest.raises(FeedReadError, match=r"no IfcBuilding in the model \(spatial elements: .*IfcRoad"):
        ingest_source(src, get_contract("cim_reference_ifc"))


def test_same_file_twice_is_a_no_op(home: Path, realdata: Path) -> None:
    src = land(home, realdata / "cim_citygml/ogc_citygml2_Building_LOD2-EPSG25832.gml")
    contract = get_contract("cim_reference_citygml")
    assert ingest_source(src, contract).status == "ingested"
    before = lake_versions()
    assert ingest_source(src, contract).status == "skipped"
    assert lake_versions() == before


# --- the demo region's models ----------------------------------------------------------------------------------
def test_demo_models_land_in_yuzhong(home: Path) -> None:
    counts = write_demo_cim(home / "landing", seed=0)
    for feed, name in (("demo_cim_ifc", "demo_yuzhong.ifc"), ("demo_cim_cityjson", "demo_yuzhong.city.json"),
                       ("demo_cim_citygml", "demo_yuzhong.gml")):
        result = ingest_source(home / "landing/cim" / name, get_contract(feed))
        assert (result.rows_read, result.rows_silver, result.rows_quarantined) == (counts[name], counts[name], 0)
    rows = buildings()
    assert len(rows) == sum(counts.values()) == 12
    assert {r["district_code"] for r in rows.values()} == {"500103"}
    mesh_rows = meshes()
    assert len(mesh_rows) == 12
    for mesh in mesh_rows.values():
        assert_clean_mesh(mesh)
    block = houses(12, 0)
    k = pyproj.Proj("EPSG:4545").get_factors(106.57, 29.56).meridional_scale
    for house in block[1:]:  # CityJSON and CityGML houses: closed LoD2 solids, footprint = the house's plan
        assert open_edges(mesh_rows[(house.id, "LoD2")]) == 0
        plan = shapely.Polygon(house.polygons()[0][:, :2])
        assert abs(rows[house.id]["area_m2"] / plan.area - 1) < 0.01
        positions, triangles = decode(mesh_rows[(house.id, "LoD2")]["positions"],
                                      mesh_rows[(house.id, "LoD2")]["indices"])
        # surface area, analytically; ENU is in true metres, the house in Gauss-Krüger grid metres (scale k)
        w, d, h, r = house.width / k, house.depth / k, house.eave, house.ridge
        surface = w * d + 2 * w * h + 2 * (d * h + d * (r - h) / 2) + 2 * w * math.hypot(d / 2, r - h)
        # from coordinates in the millions to float32 ENU without losing precision (mm rounding of the files)
        assert triangle_areas(positions.astype(np.float64), triangles.astype(np.int64)).sum() == pytest.approx(
            surface, rel=1e-4)
    ifc_row = next(r for r in rows.values() if r["lod"] == "BIM")
    plan = shapely.Polygon(block[0].polygons()[0][:, :2])  # the IFC house through IfcMapConversion (rotated)
    ifc = footprint_m(ifc_row, 4545)
    assert ifc.intersection(plan).area / ifc.union(plan).area > 0.9
    assert ifc_row["storeys"] == block[0].storeys


def test_demo_is_deterministic(tmp_path: Path) -> None:
    write_demo_cim(tmp_path / "a", seed=3)
    write_demo_cim(tmp_path / "b", seed=3)
    for f in (tmp_path / "a/cim").iterdir():
        assert f.read_bytes() == (tmp_path / "b/cim" / f.name).read_bytes(), f.name
