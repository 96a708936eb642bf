"""The demo region generator: deterministic, in the feed formats and CRSs the contracts expect, and realistic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely

from lake.area import ellipsoidal_area_m2
from lake.crs import gcj02_to_wgs84, resolve_crs, to_cgcs2000
from lake.demo_region import DemoManifest, generate_demo_region
from lake.domain import REGION_BBOX, districts, land_classes

PARCELS = 2000
CONSTRUCTION_GROUPS = {"05", "06", "07", "08", "09", "10"}
GK_EPSG = {105: "EPSG:4544", 108: "EPSG:4545", 111: "EPSG:4546"}
PROGRESS: list[tuple[str, int, int]] = []


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoManifest]:
    """Two runs with seed 0 and one with seed 1; the first records its progress calls in PROGRESS."""
    return {
        "a": generate_demo_region(tmp_path_factory.mktemp("a"), PARCELS, 0, lambda *call: PROGRESS.append(call)),
        "b": generate_demo_region(tmp_path_factory.mktemp("b"), PARCELS, 0),
        "other": generate_demo_region(tmp_path_factory.mktemp("c"), PARCELS, 1),
    }


@pytest.fixture(scope="module")
def demo(runs: dict[str, DemoManifest]) -> DemoManifest:
    return runs["a"]


def _read(path: Path, **kwargs: object) -> tuple[dict, dict[str, np.ndarray], np.ndarray]:
    """A layer as (meta, columns as numpy, shapely geometries in the file's CRS)."""
    meta, table = pyogrio.read_arrow(path, **kwargs)
    geoms = shapely.from_wkb(table.column(meta["geometry_name"] or "wkb_geometry").to_numpy(zero_copy_only=False))
    cols = {f: table.column(f).to_numpy(zero_copy_only=False) for f in meta["fields"]}
    return meta, cols, geoms


def _parcels(manifest: DemoManifest, year: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All parcels of a year, attributes concatenated, geometry in CGCS2000 lon/lat."""
    cols: dict[str, list[np.ndarray]] = {}
    geoms = []
    for path in manifest.files[f"parcels_{year}"]:
        meta, c, g = _read(path)
        geoms.append(to_cgcs2000(g, resolve_crs(meta["crs"])))
        for k, v in c.items():
            cols.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in cols.items()}, np.concatenate(geoms)


def _districts_cgcs2000(manifest: DemoManifest) -> tuple[dict[str, np.ndarray], np.ndarray]:
    _, cols, geoms = _read(manifest.files["districts"][0])
    return cols, to_cgcs2000(geoms, resolve_crs("GCJ-02"))


def _group(codes: np.ndarray) -> np.ndarray:
    classes = land_classes()
    return np.array([classes[c].group_code for c in codes])


def _is_construction(codes: np.ndarray) -> np.ndarray:
    return np.isin(_group(codes), list(CONSTRUCTION_GROUPS)) & (codes != "1006")


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_manifest_counts_match_files(demo: DemoManifest) -> None:
    assert demo.survey_years == (2019, 2023)
    assert demo.counts["districts"] == 38
    assert abs(demo.parcels_per_year - PARCELS) < 0.05 * PARCELS
    assert demo.counts["hazards"] == 200 + len(demo.planted_defects)
    assert demo.counts["buildings"] == PARCELS // 4
    for key in ("districts", "parcels_2019", "parcels_2023", "control_lines", "hazards", "buildings"):
        rows = sum(pyogrio.read_info(p)["features"] for p in demo.files[key])
        assert rows == demo.counts[key], key
    assert len(demo.files["parcels_2019"]) == 38
    assert PROGRESS[-1] == ("writing", PROGRESS[-1][2], PROGRESS[-1][2])
    assert {"districts", "parcels", "land classes", "control lines", "hazards", "buildings"} <= {c[0] for c in PROGRESS}


def test_layers_crs_and_field_types(demo: DemoManifest) -> None:
    survey = demo.landing / "survey"
    doc = json.loads((survey / "districts" / "cq_districts.geojson").read_text(encoding="utf-8"))
    assert "crs" not in doc
    assert {"adcode", "name"} == set(doc["features"][0]["properties"])
    assert isinstance(doc["features"][0]["properties"]["adcode"], int)
    seat_lon = {d.code: float(gcj02_to_wgs84(d.seat_lon_gcj02, d.seat_lat_gcj02)[0]) for d in districts()}
    for path in demo.files["parcels_2019"] + demo.files["parcels_2023"]:
        code = path.stem.split("_")[1]
        info = pyogrio.read_info(path)
        assert pyogrio.list_layers(path)[:, 0].tolist() == ["DLTB"]
        assert info["crs"] == GK_EPSG[min(GK_EPSG, key=lambda meridian: abs(meridian - seat_lon[code]))]
        assert info["geometry_type"] == "Polygon"
        assert dict(zip(info["fields"], info["dtypes"])) == {
            "BSM": "object", "TBBH": "object", "DLBM": "object", "DLMC": "object", "ZLDWDM": "object",
            "TBMJ": "float64", "KCXS": "float64", "KCMJ": "float64", "CZCSXM": "object", "SJNF": "int32"}
    for path in demo.files["control_lines"]:
        assert pyogrio.read_info(path)["crs"] == "EPSG:4490"
    hazards = json.loads(demo.files["hazards"][0].read_text(encoding="utf-8"))
    assert "crs" not in hazards
    info = pyogrio.read_info(demo.files["buildings"][0], layer="JZW")
    assert info["crs"] == "EPSG:4490"
    assert dict(zip(info["fields"], info["dtypes"]))["CS"] == "int32"


def test_same_seed_same_bytes_other_seed_differs(runs: dict[str, DemoManifest]) -> None:
    a, b, other = (runs[k].landing / "survey" for k in ("a", "b", "other"))
    files_a = _all_files(a)
    assert files_a == _all_files(b)
    cols_a, geoms_a = _parcels(runs["a"], 2019)
    cols_b, geoms_b = _parcels(runs["b"], 2019)
    assert all(np.array_equal(cols_a[k], cols_b[k]) for k in cols_a)
    assert shapely.equals_exact(geoms_a, geoms_b, tolerance=0).all()
    cols_o, geoms_o = _parcels(runs["other"], 2019)
    assert len(geoms_o) != len(geoms_a) or not shapely.equals_exact(geoms_a, geoms_o, tolerance=1e-9).all()
    assert _all_files(other) != files_a


def test_parcels_tessellate_each_district_without_overlap(demo: DemoManifest) -> None:
    cols, geoms = _parcels(demo, 2019)
    assert shapely.is_valid(geoms).all()
    assert (shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON).all()
    dcols, dgeoms = _districts_cgcs2000(demo)
    assert shapely.is_valid(dgeoms).all() and (shapely.get_type_id(dgeoms) == shapely.GeometryType.POLYGON).all()
    district_area = ellipsoidal_area_m2(dgeoms)
    district_of = cols["ZLDWDM"].astype("U6")
    for adcode, area in zip(dcols["adcode"], district_area):
        mine = geoms[district_of == str(adcode)]
        assert len(mine) >= 20
        union_area = ellipsoidal_area_m2(np.array([shapely.union_all(mine)]))[0]
        assert abs(union_area / area - 1) < 1e-3, adcode
        assert abs(ellipsoidal_area_m2(mine).sum() / union_area - 1) < 1e-6, adcode
        assert shapely.coverage_is_valid(mine), adcode  # neighbours share edges vertex for vertex
    region = ellipsoidal_area_m2(np.array([shapely.union_all(dgeoms)]))[0]
    assert abs(district_area.sum() / region - 1) < 1e-6  # districts do not overlap either
    assert shapely.coverage_is_valid(dgeoms)


def test_parcel_attributes_follow_survey_rules(demo: DemoManifest) -> None:
    for year in demo.survey_years:
        cols, geoms = _parcels(demo, year)
        codes = cols["DLBM"].astype(str)
        bsm = cols["BSM"].astype(str)
        assert len(set(bsm)) == len(bsm)
        assert all(len(s) == 14 and s.isdigit() for s in bsm)
        assert np.array_equal(bsm.astype("U6"), cols["ZLDWDM"].astype("U6"))
        assert all(len(s) == 12 and s.isdigit() for s in cols["ZLDWDM"])
        classes = land_classes()
        assert set(codes) <= set(classes)
        assert [classes[c].name_zh for c in codes] == cols["DLMC"].tolist()
        assert np.allclose(cols["TBMJ"], ellipsoidal_area_m2(geoms), rtol=1e-3)
        cultivated = _group(codes) == "01"
        assert ((cols["KCXS"][cultivated] >= 0.02) & (cols["KCXS"][cultivated] <= 0.15)).all()
        assert (cols["KCXS"][~cultivated] == 0).all()
        assert np.allclose(cols["KCMJ"], np.round(cols["TBMJ"] * cols["KCXS"], 2), atol=0.005)
        construction = _is_construction(codes)
        assert set(cols["CZCSXM"][construction]) <= {"201", "202", "203", "204", "205"}
        assert "201" in set(cols["CZCSXM"][construction])
        assert set(cols["CZCSXM"][~construction]) == {""}
        assert (cols["SJNF"] == year).all()


def test_land_class_mix_is_realistic_and_coherent(demo: DemoManifest) -> None:
    cols, geoms = _parcels(demo, 2019)
    codes = cols["DLBM"].astype(str)
    area = ellipsoidal_area_m2(geoms)
    group = _group(codes)
    construction = _is_construction(codes)

    def share(mask: np.ndarray) -> float:
        return area[mask].sum() / area.sum()

    assert 0.45 <= share(group == "03") <= 0.55
    assert 0.17 <= share(group == "01") <= 0.23
    assert 0.08 <= share(construction) <= 0.12
    assert 0.12 <= share(np.isin(group, ["02", "04", "11", "12"]) & ~construction) <= 0.25
    assert share(group == "00") < 0.01
    # Construction clusters around the district seats, forest lies away from them.
    seats = {d.code: gcj02_to_wgs84(d.seat_lon_gcj02, d.seat_lat_gcj02) for d in districts()}
    centre = shapely.get_coordinates(shapely.centroid(geoms))
    seat_xy = np.array([seats[c] for c in cols["ZLDWDM"].astype("U6")])
    d = np.hypot(centre[:, 0] - seat_xy[:, 0], centre[:, 1] - seat_xy[:, 1])
    near, far = d < 0.05, d > 0.2  # about 5 km and 20 km

    def share_in(mask: np.ndarray, where: np.ndarray) -> float:
        return area[mask & where].sum() / area[where].sum()

    assert share_in(construction, near) > 0.5 > share_in(group == "03", near)
    assert share_in(group == "03", far) > 0.5 and share_in(construction, far) < 0.1


def test_second_survey_changes_a_few_parcels(demo: DemoManifest) -> None:
    first, _ = _parcels(demo, 2019)
    second, _ = _parcels(demo, 2023)
    assert np.array_equal(first["BSM"], second["BSM"])
    before, after = first["DLBM"].astype(str), second["DLBM"].astype(str)
    changed = before != after
    assert 0.01 <= changed.mean() <= 0.05
    to_construction = changed & (_group(before) == "01") & _is_construction(after)
    assert to_construction.sum() > 0.5 * changed.sum()


def test_control_lines_are_gbk_shapefiles_over_the_right_land(demo: DemoManifest) -> None:
    _, dgeoms = _districts_cgcs2000(demo)
    region = ellipsoidal_area_m2(dgeoms).sum()
    cols19, parcels = _parcels(demo, 2019)
    cultivated = parcels[_group(cols19["DLBM"].astype(str)) == "01"]
    kinds = {"STHX": ("生态保护红线", 0.18, 0.27), "YJJBNT": ("永久基本农田", 0.10, 0.17), "CZKFBJ": ("城镇开发边界", 0.01, 0.08)}
    for path in demo.files["control_lines"]:
        kind, low, high = kinds[path.stem]
        assert path.with_suffix(".cpg").read_text(encoding="ascii").strip() == "GBK"
        raw = path.with_suffix(".dbf").read_bytes()
        assert kind.encode("gbk") in raw and kind.encode("utf-8") not in raw
        meta, cols, geoms = _read(path)
        assert set(cols["HXLX"]) == {kind}
        assert len(set(cols["HXBH"])) == len(cols["HXBH"])
        assert all(len(c) == 6 for c in cols["XZQDM"])
        assert shapely.is_valid(geoms).all() and not shapely.is_empty(geoms).any()
        assert np.allclose(cols["MJ"], ellipsoidal_area_m2(geoms), rtol=1e-6)
        assert low <= ellipsoidal_area_m2(np.array([shapely.union_all(geoms)]))[0] / region <= high, path.stem
        if path.stem == "YJJBNT":  # farmland follows cultivated parcels
            on_cultivated = shapely.area(shapely.intersection(shapely.union_all(geoms), shapely.union_all(cultivated)))
            assert on_cultivated / shapely.area(shapely.union_all(geoms)) > 0.99
        if path.stem == "CZKFBJ":
            assert len(geoms) == 38


def test_hazards_and_buildings_lie_in_the_region(demo: DemoManifest) -> None:
    _, dgeoms = _districts_cgcs2000(demo)
    region = shapely.union_all(dgeoms)
    xmin, ymin, xmax, ymax = REGION_BBOX
    meta, cols, points = _read(demo.files["hazards"][0])
    assert meta["crs"] == "EPSG:4326"
    planted = np.isin(cols["ZHDBH"], ["DEFECT-OUTSIDE", "DEFECT-DISTRICT"])
    planted[np.flatnonzero(cols["ZHDBH"] == cols["ZHDBH"][0])[1:]] = True  # the repeated row
    assert planted.sum() == len(demo.planted_defects)
    cols = {k: v[~planted] for k, v in cols.items()}
    points = points[~planted]
    xy = shapely.get_coordinates(points)
    assert ((xy[:, 0] > xmin) & (xy[:, 0] < xmax) & (xy[:, 1] > ymin) & (xy[:, 1] < ymax)).all()
    assert shapely.covers(shapely.buffer(region, 1e-5), points).all()
    assert set(cols["ZHLX"]) <= {"滑坡", "崩塌", "泥石流", "地面塌陷", "不稳定斜坡"}
    assert set(cols["GM"]) <= {"小型", "中型", "大型", "特大型"} and (cols["GM"] == "小型").mean() > 0.5
    assert set(cols["JCJB"]) <= {"专业监测", "群测群防"} and (cols["WXRS"] >= 0).all()

    meta, cols, footprints = _read(demo.files["buildings"][0], layer="JZW")
    xy = shapely.get_coordinates(footprints)
    assert ((xy[:, 0] > xmin) & (xy[:, 0] < xmax) & (xy[:, 1] > ymin) & (xy[:, 1] < ymax)).all()
    urban = {d.code for d in districts() if d.kind == "district"}
    assert set(cols["XZQDM"]) <= urban
    assert ((cols["CS"] >= 1) & (cols["CS"] <= 40)).all()
    assert np.allclose(cols["GD"], cols["CS"] * 3.0, atol=4.1)
    assert set(cols["YT"]) <= {"住宅", "商业", "办公", "工业", "公共服务"}
    left, right = shapely.STRtree(footprints).query(footprints, predicate="intersects")
    pairs = left < right
    overlap = shapely.area(shapely.intersection(footprints[left[pairs]], footprints[right[pairs]]))
    assert not (overlap > 0).any()
    area = ellipsoidal_area_m2(footprints)
    assert (area >= 99).all() and (area <= 3601).all()


def test_rerun_replaces_only_its_own_folders(tmp_path: Path) -> None:
    stale = tmp_path / "survey" / "parcels" / "2019" / "DLTB_999999_2019.gpkg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    other = tmp_path / "imagery" / "keep.json"
    other.parent.mkdir()
    other.write_text("{}")
    manifest = generate_demo_region(tmp_path, parcels=800, seed=3)
    assert not stale.exists() and other.exists()
    assert sorted((tmp_path / "survey" / "parcels" / "2019").iterdir()) == sorted(manifest.files["parcels_2019"])
