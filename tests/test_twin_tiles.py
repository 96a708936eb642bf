"""The twin's tiles from a small demo region: 3D Tiles 1.1 buildings and quantized-mesh terrain, checked by
independent tools (the 3D Tiles JSON schemas, Khronos gltf-validator), by decoding what was written, and against
the lake (building ids, footprints, DEM heights). Bad input: buildings without meshes, degenerate triangles, an IFC
in Gauss–Krüger coordinates with the zone prefix as its local coordinates, a missing and a corrupt DEM."""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyproj
import pytest
import rasterio
import shapely
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from scipy.interpolate import RegularGridInterpolator

from lake import delta_io
from lake.batch_ingest import ingest_landing
from lake.demo import write_demo
from lake.demo_cim import House, ifc_building, ifc_site
from lake.registry import BUILDING_MESHES, BUILDINGS, STAC_ASSETS
from lake.settings import REPO_ROOT, current_settings
from twin_viewer.tiles import build_twin
from twin_viewer.tiles.dem import find_dem_href
from twin_viewer.tiles.terrain import SERVED_MAX_LEVEL, deep_tile

SCHEMAS = Path(os.environ.get("ONEMAP_SCHEMAS", REPO_ROOT.parent / "shared" / "schemas"))
VALIDATOR_SCRIPT = REPO_ROOT / "twin_viewer" / "tiles" / "validate_glb.mjs"
GK_ZONE_36 = "EPSG:4524"  # CGCS2000 3-degree Gauss–Krüger zone 36, eastings with the 36,500,000 m zone prefix
HUGE_LON, HUGE_LAT = 106.60, 29.58
PLANTED_DEGENERATE = 4  # two zero-area, one repeated-index and one out-of-range triangle
ECEF_TO_GEODETIC = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


# --- the demo region, ingested, with the bad input planted, built once ---------------------------------------
def _write_gk_ifc(path: Path) -> None:
    """One building whose placement is in absolute zone-36 coordinates (easting ~36.5e6 m, northing ~3.27e6 m)
    with an IfcMapConversion of zero offset: the model's local coordinates are huge."""
    east, north = pyproj.Transformer.from_crs(4490, GK_ZONE_36, always_xy=True).transform(HUGE_LON, HUGE_LAT)
    f, body, site = ifc_site("GK zone 36 model", "GK site", projected_crs={"Name": GK_ZONE_36}, coordinate_operation={
        "Eastings": 0.0, "Northings": 0.0, "OrthogonalHeight": 0.0, "XAxisAbscissa": 1.0, "XAxisOrdinate": 0.0,
        "Scale": 1.0})
    origin = House("origin", 0.0, 0.0, 0, 0, 0, 0, 0.0, 0.0, 1, "")
    house = House("GK-HUGE", east, north, 20.0, 12.0, 9.0, 12.0, 0.0, 300.0, 3, "office")
    ifc_building(f, body, site, house, origin)
    f.write(str(path))


def _plant_degenerate_mesh(building_id: str) -> None:
    """A silver mesh for a survey building: a closed 10 × 10 × 10 m box plus PLANTED_DEGENERATE bad triangles (as
    another producer might deliver; the lake's own readers already drop degenerate triangles)."""
    row = next(r for r in delta_io.read_table(BUILDINGS).to_pylist() if r["building_id"] == building_id)
    lon, lat = (row["bbox_xmin"] + row["bbox_xmax"]) / 2, (row["bbox_ymin"] + row["bbox_ymax"]) / 2
    corners = np.array([[x, y, z] for z in (0, 10) for y in (-5, 5) for x in (-5, 5)], dtype=np.float64)
    box = [[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4], [2, 6, 3], [3, 6, 7],
           [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]]
    vertices = np.vstack([corners, [[0, 0, 0], [1, 0, 0], [2, 0, 0]]])  # 8..10 collinear
    bad = [[8, 9, 10], [10, 9, 8], [0, 0, 1], [0, 1, 99]]
    triangles = np.array(box + bad, dtype="<u4")
    mesh = {"building_id": building_id, "lod": "LoD1", "district_code": row["district_code"], "origin_lon": lon,
            "origin_lat": lat, "origin_height": 0.0, "height_reference": None, "vertex_count": len(vertices),
            "triangle_count": len(triangles), "positions": vertices.astype("<f4").tobytes(),
            "indices": triangles.tobytes()}
    delta_io.append(BUILDING_MESHES, pa.Table.from_pylist([mesh], schema=BUILDING_MESHES.schema))


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("twin")
    mp = pytest.MonkeyPatch()
    mp.setenv("ONEMAP_HOME", str(home))
    mp.delenv("ONEMAP_LAKE", raising=False)
    write_demo(home / "landing", parcels=300)
    _write_gk_ifc(home / "landing" / "cim" / "gk_zone36_huge.ifc")
    for table in ("districts", "buildings", "stac_items"):
        assert all(r.status == "ingested" for r in ingest_landing(table)), table
    # the planted 10 m box stands at its building's bbox centre: take the largest survey footprint, which holds it
    survey = max((r for r in delta_io.read_table(BUILDINGS, columns=["building_id", "source_format", "area_m2"])
                  .to_pylist() if r["source_format"] == "FileGDB"), key=lambda r: (r["area_m2"], r["building_id"]))
    _plant_degenerate_mesh(survey["building_id"])
    manifest = build_twin(current_settings())
    yield {"home": home, "manifest": manifest, "twin": home / "twin", "planted_mesh": survey["building_id"]}
    mp.undo()


# --- readers for what was written ------------------------------------------------------------------------------
def read_glb(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    json_len, _ = struct.unpack_from("<I4s", data, 12)
    doc = json.loads(data[20:20 + json_len])
    bin_len, kind = struct.unpack_from("<I4s", data, 20 + json_len)
    assert kind == b"BIN\0"
    return doc, data[28 + json_len:28 + json_len + bin_len]


def accessor(doc: dict, blob: bytes, index: int) -> np.ndarray:
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    width = {"SCALAR": 1, "VEC3": 3}[acc["type"]]
    dtype = {5126: "<f4", 5123: "<u2", 5121: "u1"}[acc["componentType"]]
    values = np.frombuffer(blob, dtype=dtype, count=acc["count"] * width,
                           offset=view["byteOffset"] + acc.get("byteOffset", 0))
    return values.reshape(-1, width) if width > 1 else values


def property_table(doc: dict, blob: bytes) -> dict[str, list]:
    meta = doc["extensions"]["EXT_structural_metadata"]
    table = meta["propertyTables"][0]
    classes = meta["schema"]["classes"][table["class"]]["properties"]
    views = doc["bufferViews"]

    def raw(i: int) -> bytes:
        return blob[views[i]["byteOffset"]:views[i]["byteOffset"] + views[i]["byteLength"]]

    out = {}
    for name, prop in table["properties"].items():
        if classes[name]["type"] == "STRING":
            offsets = np.frombuffer(raw(prop["stringOffsets"]), dtype="<u4")
            text = raw(prop["values"])
            out[name] = [text[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        else:
            dtype = {"FLOAT64": "<f8", "INT32": "<i4"}[classes[name]["componentType"]]
            out[name] = np.frombuffer(raw(prop["values"]), dtype=dtype).tolist()
    return out


def leaves(twin: dict) -> list[dict]:
    """Every content tile with its GLB decoded: root-frame positions, feature ids, properties, ancestors' boxes."""
    tileset = json.loads((twin["twin"] / "buildings" / "tileset.json").read_text())
    found = []

    def walk(tile: dict, transform: np.ndarray, boxes: list) -> None:
        local = np.array(tile.get("transform", np.eye(4).T.ravel())).reshape(4, 4).T
        frame = transform @ local
        boxes = [*boxes, (frame, tile["boundingVolume"]["box"])]
        if "content" in tile:
            doc, blob = read_glb(twin["twin"] / "buildings" / tile["content"]["uri"])
            prim = doc["meshes"][0]["primitives"][0]
            gltf = accessor(doc, blob, prim["attributes"]["POSITION"]).astype(np.float64)
            z_up = np.column_stack([gltf[:, 0], -gltf[:, 2], gltf[:, 1]])  # 3D Tiles: glTF y-up -> z-up
            found.append({"uri": tile["content"]["uri"], "positions": z_up, "frame": frame, "boxes": boxes,
                          "features": accessor(doc, blob, prim["attributes"]["_FEATURE_ID_0"]),
                          "properties": property_table(doc, blob), "doc": doc})
        for child in tile.get("children", []):
            walk(child, frame, boxes)

    walk(tileset["root"], np.eye(4), [])
    return found


def to_ecef(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ frame[:3, :3].T + frame[:3, 3]


def dem_oracle(href: str):
    """Bilinear interpolation between pixel centres by scipy (inside the centres' hull only), for comparison."""
    with rasterio.open(href) as src:
        heights = src.read(1, masked=True).filled(0).astype(np.float64)
        t = src.transform
    lons = t.c + (np.arange(heights.shape[1]) + 0.5) * t.a
    lats = t.f + (np.arange(heights.shape[0]) + 0.5) * t.e
    interp = RegularGridInterpolator((lats[::-1], lons), heights[::-1], bounds_error=False, fill_value=np.nan)
    return lambda lon, lat: interp(np.column_stack([lat, lon]))


# --- buildings -------------------------------------------------------------------------------------------------
def test_tileset_validates_against_the_3d_tiles_schemas(twin: dict) -> None:
    folder = SCHEMAS / "3dtiles" / "1.1"
    if not folder.is_dir():
        pytest.skip(f"3D Tiles schemas not found at {folder} (set ONEMAP_SCHEMAS)")
    base = "https://schemas.invalid/3dtiles/1.1/"  # each schema's relative $id resolves against where it lies
    resources = [(base + p.relative_to(folder).as_posix(),
                  Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT202012))
                 for p in folder.rglob("*.schema.json")]
    registry = Registry().with_resources(resources).crawl()
    top = json.loads((folder / "tileset.schema.json").read_text())
    validator = validator_for(top)({"$ref": base + "tileset.schema.json"}, registry=registry)
    tileset = json.loads((twin["twin"] / "buildings" / "tileset.json").read_text())
    assert [e.message for e in validator.iter_errors(tileset)] == []
    broken = json.loads(json.dumps(tileset))
    broken["root"]["geometricError"] = -1
    assert list(validator.iter_errors(broken)), "the validator must reject a negative geometric error"
    assert tileset["asset"]["version"] == "1.1"


def test_every_glb_passes_gltf_validator(twin: dict) -> None:
    files = sorted((twin["twin"] / "buildings").rglob("*.glb"))
    assert files
    run = subprocess.run(["node", str(VALIDATOR_SCRIPT), *map(str, files)], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    reports = json.loads(run.stdout)
    assert len(reports) == len(files)
    errors = {r["uri"]: [m for m in r["issues"]["messages"] if m["severity"] == 0] for r in reports}
    assert {k: v for k, v in errors.items() if v} == {}
    assert all(r["issues"]["numWarnings"] == 0 for r in reports), [r["issues"] for r in reports]


def test_feature_ids_are_exactly_the_lake_buildings(twin: dict) -> None:
    lake = delta_io.read_table(BUILDINGS, columns=["building_id", "height_m", "storeys", "district_code"])
    tiles = leaves(twin)
    ids = [i for t in tiles for i in t["properties"]["building_id"]]
    assert sorted(ids) == sorted(lake["building_id"].to_pylist())  # each once, none missing, none invented
    by_id = {r["building_id"]: r for r in lake.to_pylist()}
    for t in tiles:
        props = t["properties"]
        count = len(props["building_id"])
        ext = t["doc"]["meshes"][0]["primitives"][0]["extensions"]["EXT_mesh_features"]["featureIds"][0]
        assert ext["featureCount"] == count and ext["attribute"] == 0 and ext["propertyTable"] == 0
        assert set(np.unique(t["features"]).astype(int)) == set(range(count))  # every building has triangles
        for i, building_id in enumerate(props["building_id"]):
            assert props["district_code"][i] == by_id[building_id]["district_code"]
            assert props["storeys"][i] == (by_id[building_id]["storeys"] if by_id[building_id]["storeys"] is not None
                                           else -1)
    manifest = twin["manifest"]["buildings"]
    assert manifest["count"] == lake.num_rows == manifest["meshed"] + manifest["extruded"]


def test_bounding_volumes_contain_their_content(twin: dict) -> None:
    for t in leaves(twin):
        ecef = to_ecef(t["frame"], t["positions"])
        for frame, box in t["boxes"]:  # the leaf's box and every ancestor's, each in its own frame
            local = (ecef - frame[:3, 3]) @ frame[:3, :3]  # frames are rotations + translations
            centre, half = np.array(box[:3]), np.array([box[3], box[7], box[11]])
            assert box[4:7] == [0, 0, 0] and box[8:11] == [0, 0, 0]  # axis-aligned boxes
            assert (np.abs(local - centre) <= half + 1e-3).all(), t["uri"]


def _geodetic(t: dict) -> np.ndarray:
    ecef = to_ecef(t["frame"], t["positions"])
    return np.column_stack(ECEF_TO_GEODETIC.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2]))


def test_buildings_stand_on_the_dem_and_keep_their_footprints(twin: dict) -> None:
    """Placement end to end (root ENU frame, leaf translations, glTF axes): every building's lowest vertex is on
    the DEM under it, an extruded building's vertices are its footprint's corners at base and base + height."""
    ground = dem_oracle(find_dem_href())
    rows = {r["building_id"]: r for r in delta_io.read_table(BUILDINGS).to_pylist()}
    checked_extruded = 0
    for t in leaves(twin):
        lonlath = _geodetic(t)
        features = t["features"].astype(int)
        for i, building_id in enumerate(t["properties"]["building_id"]):
            mine = lonlath[features == i]
            row = rows[building_id]
            lon, lat = (row["bbox_xmin"] + row["bbox_xmax"]) / 2, (row["bbox_ymin"] + row["bbox_ymax"]) / 2
            expected = float(ground(np.array([lon]), np.array([lat]))[0])
            assert abs(mine[:, 2].min() - expected) < 1.0, (building_id, mine[:, 2].min(), expected)
            footprint = shapely.from_wkb(row["geometry"])
            assert shapely.contains_xy(shapely.buffer(footprint, 1e-6), mine[:, 0], mine[:, 1]).all(), building_id
            if t["properties"]["geometry_source"][i] == "extruded":
                height = t["properties"]["height_m"][i]
                assert height == pytest.approx(row["height_m"] or (row["storeys"] or 0) * 3.0 or 9.0)
                assert np.allclose(np.unique(np.round(mine[:, 2] - mine[:, 2].min(), 3)), [0.0, round(height, 3)])
                corners = shapely.get_coordinates(footprint)
                distance = np.hypot(*(mine[:, None, :2] - corners[None, :, :]).transpose(2, 0, 1)).min(axis=1)
                assert distance.max() < 1e-7, building_id  # degrees: about a centimetre
                checked_extruded += 1
    assert checked_extruded > 50


def test_extrusion_of_convex_concave_holed_and_multi_footprints() -> None:
    """Roofs cover exactly the footprint (fans for convex rings, earcut for the rest, holes left open), walls
    face outwards on every ring, repeated points are not walls."""
    from twin_viewer.tiles.geometry import Frame, extrude

    lon, lat, m = 106.57, 29.56, 1 / 111_000
    square = shapely.box(lon, lat, lon + 20 * m, lat + 20 * m)
    ell = shapely.Polygon([(lon, lat), (lon + 30 * m, lat), (lon + 30 * m, lat + 10 * m), (lon + 10 * m, lat + 10 * m),
                           (lon + 10 * m, lat + 30 * m), (lon, lat + 30 * m), (lon, lat)])
    holed = shapely.box(lon, lat, lon + 40 * m, lat + 40 * m).difference(
        shapely.box(lon + 10 * m, lat + 10 * m, lon + 30 * m, lat + 30 * m))
    repeated = shapely.Polygon([(lon, lat), (lon, lat), (lon + 20 * m, lat), (lon + 20 * m, lat + 20 * m),
                                (lon, lat + 20 * m)])
    multi = shapely.MultiPolygon([square, shapely.affinity.translate(square, 100 * m)])
    footprints = [square, ell, holed, repeated, multi]
    frame = Frame(lon, lat)
    triangles, owner, dropped = extrude(shapely.to_wkb(np.array(footprints)), np.zeros(5), np.full(5, 10.0), frame)
    assert dropped == 0
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    normal = np.cross(b - a, c - a)
    area = 0.5 * np.linalg.norm(normal, axis=1)
    roof = normal[:, 2] > 0.99 * np.linalg.norm(normal, axis=1)
    for i, shape in enumerate(footprints):
        walls = ~roof & (owner == i)
        edges = sum(len(shapely.get_coordinates(r)) - 1 for r in shapely.get_rings(shapely.get_parts(shape)))
        assert walls.sum() == 2 * (edges - (1 if i == 3 else 0)), i  # a repeated point makes no wall
        plan_shape = shapely.transform(shape, lambda xy: frame.enu(xy[:, 0], xy[:, 1], np.zeros(len(xy)))[:, :2])
        roof_area = area[roof & (owner == i)].sum()
        assert roof_area == pytest.approx(shapely.area(plan_shape), rel=1e-5), i  # roofs 10 m up: +3e-6
        centre = triangles[walls].mean(axis=1)[:, :2]
        out = normal[walls][:, :2] / np.linalg.norm(normal[walls][:, :2], axis=1, keepdims=True) * 0.05
        outside, inside = centre + out, centre - out  # 5 cm either side of each wall
        assert not shapely.contains_xy(plan_shape, outside[:, 0], outside[:, 1]).any(), i
        assert shapely.contains_xy(plan_shape, inside[:, 0], inside[:, 1]).all(), i
    # walls follow the local vertical, which leans 1.6e-5 rad per 100 m from the frame origin
    assert (np.abs(normal[~roof][:, 2]) < 1e-4 * np.linalg.norm(normal[~roof], axis=1)).all()


def test_meshed_and_extruded_buildings(twin: dict) -> None:
    """Buildings with a silver mesh use it (IFC, CityJSON, CityGML and the planted one); all others are
    extruded from their footprints."""
    meshes = set(delta_io.read_table(BUILDING_MESHES, columns=["building_id"])["building_id"].to_pylist())
    source = {b: s for t in leaves(twin) for b, s in zip(t["properties"]["building_id"],
                                                          t["properties"]["geometry_source"], strict=True)}
    assert {b for b, s in source.items() if s == "mesh"} == meshes
    assert len(meshes) == 12 + 1 + 1 and twin["planted_mesh"] in meshes
    assert twin["manifest"]["buildings"]["meshed"] == len(meshes)


def test_degenerate_triangles_are_dropped_and_counted(twin: dict) -> None:
    assert twin["manifest"]["buildings"]["dropped_degenerate_triangles"] == PLANTED_DEGENERATE
    for t in leaves(twin):
        if twin["planted_mesh"] in t["properties"]["building_id"]:
            i = t["properties"]["building_id"].index(twin["planted_mesh"])
            assert (t["features"] == i).sum() == 12 * 3  # the box's 12 triangles, nothing else


def test_ifc_with_huge_gauss_kruger_coordinates_is_placed_to_the_millimetre(twin: dict) -> None:
    """The GK zone-36 model (local x ≈ 36.5e6 m) lands where it is and keeps its shape to the millimetre: the
    tiles' float32 positions are offsets from their tile's centre."""
    row = next(r for r in delta_io.read_table(BUILDINGS).to_pylist() if r["_source_uri"].endswith("gk_zone36_huge.ifc"))
    tile = next(t for t in leaves(twin) if row["building_id"] in t["properties"]["building_id"])
    mine = _geodetic(tile)[tile["features"].astype(int) == tile["properties"]["building_id"].index(row["building_id"])]
    to_gk = pyproj.Transformer.from_crs(4490, GK_ZONE_36, always_xy=True)
    east, north = to_gk.transform(mine[:, 0], mine[:, 1])
    east0, north0 = to_gk.transform(HUGE_LON, HUGE_LAT)
    assert abs(east.min() - east0) < 0.5 and abs(north.min() - north0) < 0.5  # the house's corner (walls 0.25 m)
    assert 19.9 < east.max() - east.min() < 20.6 and 11.9 < north.max() - north.min() < 12.6
    # the same vertices as the lake's mesh (float64 ENU at its origin -> GK), to the millimetre
    mesh = next(r for r in delta_io.read_table(BUILDING_MESHES).to_pylist() if r["building_id"] == row["building_id"])
    enu = np.frombuffer(mesh["positions"], dtype="<f4").reshape(-1, 3).astype(np.float64)
    origin = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True).transform(
        mesh["origin_lon"], mesh["origin_lat"], mesh["origin_height"])
    lam, phi = np.radians(mesh["origin_lon"]), np.radians(mesh["origin_lat"])
    axes = np.array([[-np.sin(lam), np.cos(lam), 0],
                     [-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)],
                     [np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)]])
    ecef = np.array(origin) + enu @ axes
    lon, lat, _ = ECEF_TO_GEODETIC.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
    lake_en = np.column_stack(to_gk.transform(lon, lat))
    tile_en = np.column_stack([east, north])
    nearest = np.hypot(*(tile_en[:, None, :] - lake_en[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    assert nearest.max() < 0.001


# --- terrain ---------------------------------------------------------------------------------------------------
def zigzag(values: np.ndarray) -> np.ndarray:
    return (values >> 1) ^ (-(values & 1))


def decode_terrain(data: bytes) -> dict:
    """quantized-mesh-1.0: header, zig-zag delta u/v/height, high-water-mark indices, edge lists."""
    header = struct.unpack_from("<3d2f4d3d", data, 0)
    offset = 88
    (count,) = struct.unpack_from("<I", data, offset)
    offset += 4
    uvh = np.frombuffer(data, dtype="<u2", count=3 * count, offset=offset).astype(np.int64).reshape(3, count)
    offset += 6 * count
    u, v, h = (np.cumsum(zigzag(a)) for a in uvh)
    wide = count > 65536
    itype, isize = ("<u4", 4) if wide else ("<u2", 2)
    if wide and offset % 4:
        offset += 4 - offset % 4
    elif offset % 2:
        offset += 1
    (triangles,) = struct.unpack_from("<I", data, offset)
    offset += 4
    coded = np.frombuffer(data, dtype=itype, count=3 * triangles, offset=offset).astype(np.int64)
    offset += 3 * triangles * isize
    indices, highest = np.empty_like(coded), 0
    for k, code in enumerate(coded):  # high-water mark: sequential by nature
        indices[k] = highest - code
        if code == 0:
            highest += 1
    edges = []
    for _ in range(4):
        (n,) = struct.unpack_from("<I", data, offset)
        offset += 4
        edges.append(np.frombuffer(data, dtype=itype, count=n, offset=offset))
        offset += n * isize
    return {"centre": header[0:3], "min_h": header[3], "max_h": header[4], "sphere": header[5:9],
            "occlusion": header[9:12], "u": u, "v": v, "h": h, "indices": indices.reshape(-1, 3), "edges": edges,
            "rest": len(data) - offset}


def test_layer_json_availability_matches_the_files_and_the_deep_levels(twin: dict) -> None:
    terrain = twin["twin"] / "terrain"
    assert twin["manifest"]["terrain"] == {"available": True, "layer": "terrain/layer.json", "warning": None}
    layer = json.loads((terrain / "layer.json").read_text())
    assert layer["format"] == "quantized-mesh-1.0" and layer["scheme"] == "tms" and layer["projection"] == "EPSG:4326"
    declared = {(z, x, y) for z, ranges in enumerate(layer["available"]) for r in ranges
                for x in range(r["startX"], r["endX"] + 1) for y in range(r["startY"], r["endY"] + 1)}
    files = {tuple(int(p) for p in f.relative_to(terrain).with_suffix("").parts) for f in terrain.rglob("*.terrain")}
    built = max(z for z, _, _ in files)
    assert built >= 8  # finest grid about as fine as the 0.01° DEM
    assert files == {t for t in declared if t[0] <= built}
    assert layer["available"][0] == [{"startX": 0, "startY": 0, "endX": 1, "endY": 0}]
    assert layer["maxzoom"] == len(layer["available"]) - 1 == SERVED_MAX_LEVEL > built
    region = twin["manifest"]["region"]
    for z in (built, SERVED_MAX_LEVEL):
        top = layer["available"][z][0]
        size = 180 / 2 ** z
        assert -180 + top["startX"] * size <= region["west"] and -180 + (top["endX"] + 1) * size >= region["east"]
        assert -90 + top["startY"] * size <= region["south"] and -90 + (top["endY"] + 1) * size >= region["north"]
    # the levels below the files: every declared tile is cut from the kept DEM, nothing else is
    for z in (built + 1, SERVED_MAX_LEVEL):
        r = layer["available"][z][0]
        assert deep_tile(terrain, z, r["startX"], r["endY"]) is not None
        assert deep_tile(terrain, z, r["endX"] + 1, r["endY"]) is None
    assert deep_tile(terrain, built, 0, 0) is None and deep_tile(terrain, SERVED_MAX_LEVEL + 1, 0, 0) is None


def test_terrain_tiles_decode_to_the_dem_heights(twin: dict) -> None:
    terrain = twin["twin"] / "terrain"
    layer = json.loads((terrain / "layer.json").read_text())
    ground = dem_oracle(find_dem_href())
    with rasterio.open(find_dem_href()) as src:
        west_dem, south_dem, east_dem, north_dem = src.bounds
    to_ecef_wgs84 = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    z = max(int(level.name) for level in terrain.iterdir() if level.is_dir())  # the finest built level
    r = layer["available"][z][0]
    picks = [(0, 0, 0), (0, 1, 0), (z, (r["startX"] + r["endX"]) // 2, (r["startY"] + r["endY"]) // 2),
             (z, r["startX"], r["startY"]), (z - 2, *(layer["available"][z - 2][0][k] for k in ("endX", "endY")))]
    compared = outside_seen = 0
    deep = {z + 1: layer["available"][z + 1][0], SERVED_MAX_LEVEL: layer["available"][SERVED_MAX_LEVEL][0]}
    picks += [(dz, (r["startX"] + r["endX"]) // 2, (r["startY"] + r["endY"]) // 2) for dz, r in deep.items()]
    grids = {}
    for tz, tx, ty in picks:
        path = terrain / str(tz) / str(tx) / f"{ty}.terrain"
        tile = decode_terrain(path.read_bytes() if tz <= z else gzip.decompress(deep_tile(terrain, tz, tx, ty)[0]))
        assert tile["rest"] == 0
        size = 180 / 2**tz
        west, south = -180 + tx * size, -90 + ty * size
        grid = grids[tz] = round(math.sqrt(len(tile["u"]))) - 1
        iu, iv = np.round(tile["u"] / 32767 * grid), np.round(tile["v"] / 32767 * grid)
        assert np.abs(tile["u"] - iu * 32767 / grid).max() <= 1 and np.abs(tile["v"] - iv * 32767 / grid).max() <= 1
        lon, lat = west + iu / grid * size, south + iv / grid * size
        step = (tile["max_h"] - tile["min_h"]) / 32767
        heights = tile["min_h"] + tile["h"] * step
        expected = ground(lon, lat)
        inside = np.isfinite(expected)
        assert np.abs(heights[inside] - expected[inside]).max(initial=0) <= step + 0.01
        compared += inside.sum()
        outside = (lon < west_dem) | (lon > east_dem) | (lat < south_dem) | (lat > north_dem)
        assert np.abs(heights[outside]).max(initial=0) <= step + 0.01  # outside the DEM: the ellipsoid
        outside_seen += outside.sum()
        # header: heights, bounding sphere and edge lists agree with the vertices
        assert tile["min_h"] == pytest.approx(heights.min(), abs=0.01)
        ecef = np.column_stack(to_ecef_wgs84.transform(lon, lat, heights))
        assert (np.linalg.norm(ecef - tile["sphere"][:3], axis=1) <= tile["sphere"][3] + 1.0).all()
        assert (tile["indices"] < len(tile["u"])).all() and len(tile["indices"]) == 2 * grid * grid
        west_e, south_e, east_e, north_e = tile["edges"]
        assert (tile["u"][west_e] == 0).all() and (tile["v"][south_e] == 0).all()
        assert (tile["u"][east_e] == 32767).all() and (tile["v"][north_e] == 32767).all()
        assert len(west_e) == len(south_e) == len(east_e) == len(north_e) == grid + 1
        assert np.linalg.norm(tile["occlusion"]) > 0
    assert compared > 1000 and outside_seen > 4000
    assert grids[z] == 64 and grids[z + 1] == 32 and grids[SERVED_MAX_LEVEL] == 8  # deep tiles keep the DEM's spacing


# --- missing and corrupt DEM: the ellipsoid, with a warning that names the file ---------------------------------
@pytest.fixture
def rebuild_home(twin: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Another home (fresh twin/) over the module's lake."""
    monkeypatch.setenv("ONEMAP_HOME", str(tmp_path))
    monkeypatch.setenv("ONEMAP_LAKE", str(twin["home"] / "lake"))
    (tmp_path / "twin" / "terrain").mkdir(parents=True)  # a previous build's terrain must go
    return tmp_path


def _assert_ellipsoid(manifest: dict, home: Path, caplog: pytest.LogCaptureFixture, reason: str) -> None:
    assert manifest["terrain"]["available"] is False and manifest["terrain"]["layer"] is None
    assert reason in manifest["terrain"]["warning"]
    assert not (home / "twin" / "terrain").exists()
    assert any(reason in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert manifest["buildings"]["count"] > 0
    written = json.loads((home / "twin" / "manifest.json").read_text())
    assert written == manifest


def test_missing_dem_file_gives_the_ellipsoid_with_a_warning(rebuild_home: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    href = find_dem_href()
    moved = Path(href).with_suffix(".away")
    shutil.move(href, moved)
    try:
        with caplog.at_level(logging.WARNING):
            manifest = build_twin(current_settings())
    finally:
        shutil.move(moved, href)
    _assert_ellipsoid(manifest, rebuild_home, caplog, Path(href).name)
    for t in leaves({"twin": rebuild_home / "twin"}):  # buildings stand on the ellipsoid now
        assert abs(_geodetic(t)[:, 2].min()) < 0.01


def test_corrupt_dem_gives_the_ellipsoid_with_gdal_reason(rebuild_home: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    href = Path(find_dem_href())
    original = href.read_bytes()
    href.write_bytes(original[: len(original) // 2] + b"\0" * 64)  # header intact, tiles cut short
    try:
        with caplog.at_level(logging.WARNING):
            manifest = build_twin(current_settings())
    finally:
        href.write_bytes(original)
    _assert_ellipsoid(manifest, rebuild_home, caplog, href.name)
    assert "corrupt" in manifest["terrain"]["warning"] or "cannot" in manifest["terrain"]["warning"]


def test_no_dem_in_the_catalog(rebuild_home: Path, caplog: pytest.LogCaptureFixture, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    lake = tmp_path / "lake_without_dem"
    shutil.copytree(Path(os.environ["ONEMAP_LAKE"]), lake)
    monkeypatch.setenv("ONEMAP_LAKE", str(lake))
    delta_io.overwrite(STAC_ASSETS, delta_io.read_table(STAC_ASSETS).filter(
        pa.compute.invert(pa.compute.match_substring(delta_io.read_table(STAC_ASSETS)["collection"], "dem"))))
    with caplog.at_level(logging.WARNING):
        manifest = build_twin(current_settings())
    _assert_ellipsoid(manifest, rebuild_home, caplog, "no DEM")


def test_rebuild_replaces_the_folders_and_leaves_no_staging(twin: dict) -> None:
    before = {p.name for p in (twin["twin"] / "buildings" / "content").iterdir()}
    manifest = build_twin(current_settings())
    assert {p.name for p in (twin["twin"] / "buildings" / "content").iterdir()} == before
    assert sorted(p.name for p in twin["twin"].iterdir()) == ["buildings", "manifest.json", "terrain"]
    assert manifest["buildings"] == twin["manifest"]["buildings"]


# --- Dagster -----------------------------------------------------------------------------------------------------
def test_dagster_asset_runs_after_gold_and_builds_the_twin(twin: dict) -> None:
    from orchestration.build import build
    from orchestration.definitions import defs
    from orchestration.one_map_assets import GOLD_KEY
    from orchestration.twin_assets import TWIN_MAP_INDEX_KEY, TWIN_TILES_KEY

    graph = defs.resolve_asset_graph()
    for key in (TWIN_TILES_KEY, TWIN_MAP_INDEX_KEY):
        node = graph.get(key)
        assert GOLD_KEY in node.parent_keys and node.group_name == "twin"
        # `onemap build`/`onemap demo` run the partitioned assets in one run after the unpartitioned ones: the
        # twin must be partitioned like gold to run after it
        assert node.partitions_def == graph.get(GOLD_KEY).partitions_def
    (twin["twin"] / "manifest.json").unlink()
    outcome = build("key:twin/tiles")
    assert outcome.materialized == ["twin/tiles"]
    assert json.loads((twin["twin"] / "manifest.json").read_text())["buildings"] == twin["manifest"]["buildings"]
