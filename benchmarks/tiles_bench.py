"""Twin tiles benchmark: buildings/s of the tiles build at 10k and 100k synthetic extruded buildings (plus the demo's
IFC/CityJSON/CityGML meshes), with the demo DEM for ground heights and terrain.

Synthetic buildings are rotated rectangles (8–30 m × 8–20 m, 1–30 storeys; a tenth without height so storeys
decide) clustered around the 38 district seats like towns, written straight into silver/buildings: what is timed
is the tile build, not ingestion. Each size runs in its own process so its peak memory (max RSS) is its own.

    python -m benchmarks.tiles_bench [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely

from lake import delta_io
from lake.batch_ingest import ingest_landing
from lake.crs import gcj02_to_wgs84
from lake.demo_cim import write_demo_cim
from lake.demo_imagery import write_demo_imagery
from lake.domain import districts
from lake.registry import BUILDINGS
from lake.settings import current_settings

RESULTS = Path(__file__).resolve().parent / "results" / "tiles_bench.json"
M_PER_DEG = 111_320.0


def synthetic_buildings(n: int, seed: int = 5) -> pa.Table:
    """n rectangles around the district seats (town-like clusters, sigma 2 km), as silver/buildings rows."""
    rng = np.random.default_rng(seed)
    seats = districts()
    lon0, lat0 = gcj02_to_wgs84(np.array([d.seat_lon_gcj02 for d in seats]), np.array([d.seat_lat_gcj02 for d in seats]))
    town = rng.integers(0, len(seats), n)
    east, north = rng.normal(0, 2000, n), rng.normal(0, 2000, n)
    width, depth, angle = rng.uniform(8, 30, n), rng.uniform(8, 20, n), rng.uniform(0, np.pi, n)
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    local = corners[None] * np.stack([width, depth], axis=1)[:, None]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x = local[..., 0] * cos - local[..., 1] * sin + east[:, None]
    y = local[..., 0] * sin + local[..., 1] * cos + north[:, None]
    lat = lat0[town][:, None] + y / M_PER_DEG
    lon = lon0[town][:, None] + x / (M_PER_DEG * np.cos(np.radians(lat0[town]))[:, None])
    polygons = shapely.polygons(np.stack([lon, lat], axis=2))
    bounds = shapely.bounds(polygons)
    storeys = rng.integers(1, 31, n).astype(np.int32)
    height = np.where(rng.random(n) < 0.1, np.nan, storeys * 3.2)
    codes = np.array([d.code for d in seats])[town]
    columns = {
        "building_id": [f"SYN-{i:07d}" for i in range(n)], "name": [None] * n, "function": ["residential"] * n,
        "storeys": storeys, "height_m": pa.array(height, from_pandas=True), "district_code": codes, "lod": ["LoD0"] * n,
        "source_format": ["synthetic"] * n, "source_crs": ["EPSG:4490"] * n, "area_m2": width * depth,
        "geometry": shapely.to_wkb(polygons), "bbox_xmin": bounds[:, 0], "bbox_ymin": bounds[:, 1],
        "bbox_xmax": bounds[:, 2], "bbox_ymax": bounds[:, 3],
    }
    schema = BUILDINGS.schema
    return pa.table({f.name: pa.array(columns.get(f.name, [None] * n), type=f.type) for f in schema}, schema=schema)


def measure_one(n: int) -> dict:
    """In a fresh home: the demo DEM catalog and meshes ingested, n synthetic buildings added, the twin built."""
    from twin_viewer.tiles import build_twin
    from twin_viewer.tiles.geometry import Frame, load_soup

    with tempfile.TemporaryDirectory(prefix="onemap-tiles-bench-") as tmp:
        os.environ["ONEMAP_HOME"] = tmp
        os.environ.pop("ONEMAP_LAKE", None)
        landing = Path(tmp) / "landing"
        write_demo_imagery(landing)
        write_demo_cim(landing)
        for table in ("stac_items", "buildings"):
            ingest_landing(table)
        delta_io.append(BUILDINGS, synthetic_buildings(n))
        start, cpu = time.perf_counter(), time.process_time()
        manifest = build_twin(current_settings())
        total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
        twin = Path(tmp) / "twin"
        tiles = list((twin / "buildings" / "content").glob("*.glb"))
        size_mb = sum(p.stat().st_size for p in tiles) / 1e6
        terrain = len(list((twin / "terrain").rglob("*.terrain")))
        # the buildings part alone (read silver, place, extrude), without writing: where the time goes
        region = manifest["region"]
        start = time.perf_counter()
        load_soup(Frame((region["west"] + region["east"]) / 2, (region["south"] + region["north"]) / 2),
                  lambda lon, lat: np.zeros(np.shape(lon)))
        soup_s = time.perf_counter() - start
    count = manifest["buildings"]["count"]
    return {"buildings": count, "meshed": manifest["buildings"]["meshed"], "build_s": total,
            "build_cpu_s": total_cpu, "buildings_per_s": count / total, "geometry_s": soup_s, "glb_files": len(tiles),
            "glb_mb": size_mb, "terrain_tiles": terrain,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: one size, JSON on stdout
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure_one(args.one)))
        return
    print(f"{'buildings':>9} {'meshed':>6} {'build s':>8} {'CPU s':>6} {'buildings/s':>11} {'geometry s':>10} "
          f"{'GLBs':>5} {'GLB MB':>7} {'terrain tiles':>13} {'peak MB':>8}")
    results = []
    for n in args.sizes:
        run = subprocess.run([sys.executable, "-m", "benchmarks.tiles_bench", "--one", str(n)], capture_output=True,
                             text=True, check=True)
        r = json.loads(run.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{r['buildings']:>9,} {r['meshed']:>6} {r['build_s']:>8.2f} {r['build_cpu_s']:>6.2f} "
              f"{r['buildings_per_s']:>11,.0f} {r['geometry_s']:>10.2f} {r['glb_files']:>5} {r['glb_mb']:>7.1f} "
              f"{r['terrain_tiles']:>13} {r['peak_rss_mb']:>8.0f}", flush=True)
    print("build = build_twin end to end (read silver, DEM, place meshes, extrude, quadtree, GLBs, terrain, manifest, "
          "swap); geometry = reading and triangulating the buildings alone; peak = max RSS of the process; 2 cores")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
