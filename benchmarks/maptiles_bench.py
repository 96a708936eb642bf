"""Twin map-tile benchmark at 1,000,000 parcels: overlay index build, cold and warm parcel tiles, parcel lookup.

Data: the one-map benchmark's synthetic region (`benchmarks.onemap_bench.generate`: Voronoi parcels over the demo
region, clipped to the 38 districts, realistic land-class shares). Its silver parcels are written to gold
one_map_parcels (land-class names and groups from the domain list) and logged as a published build, so the tiles
read gold at the current release (lake.releases) exactly as in production; the one-map build itself is measured in
onemap_bench, not here.

Figures: index build (Parquet sorted along a Hilbert curve + the zoom-10 overview raster); per zoom 8, 11 and 14
the p50/p95 of cold renders (nothing cached on disk) and warm requests (disk cache hit) over tiles that hold
parcels; `parcel_at` at random parcel interiors. Results also go to benchmarks/results/maptiles_bench.json.

    python -m benchmarks.maptiles_bench [--parcels 1000000] [--tiles 60] [--points 300]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

ZOOMS = (8, 11, 14)


def publish_parcels_as_gold() -> str:
    """gold/one_map_parcels from the synthetic silver parcels, then a `published` row naming its version."""
    from lake import delta_io
    from lake.domain import land_classes
    from lake.registry import GOLD_ONE_MAP_PARCELS, PARCELS
    from lake.releases import PUBLISHED, log_build

    silver = delta_io.read_table(PARCELS)
    codes = silver.column("land_class_code").to_pylist()
    classes = land_classes()

    def attr(name: str) -> pa.Array:
        return pa.array([getattr(classes[c], name) if c in classes else None for c in codes])

    construction = pa.array([classes[c].three_category == "construction" if c in classes else False for c in codes])
    columns = {f.name: silver.column(f.name) for f in GOLD_ONE_MAP_PARCELS.schema if f.name in silver.column_names}
    columns |= {"land_class_name": attr("name_zh"), "land_class_name_en": attr("name_en"),
                "group_code": attr("group_code"), "group_name": attr("group_name_zh"),
                "three_category": attr("three_category"), "is_construction": construction,
                "is_cultivated": pc.starts_with(silver.column("land_class_code"), "01")}
    n = silver.num_rows
    for f in GOLD_ONE_MAP_PARCELS.schema:
        columns.setdefault(f.name, pa.nulls(n, f.type))
    version = delta_io.overwrite(GOLD_ONE_MAP_PARCELS, pa.table(columns))
    build_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S-bench")
    log_build(build_id, PUBLISHED, None, {GOLD_ONE_MAP_PARCELS.key: version}, [])
    return build_id


def _pct(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"n": len(values), "p50_ms": 1000 * statistics.median(ordered),
            "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}


def _timed(call) -> float:
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def bench(parcels: int, tiles: int, points: int, seed: int = 0) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"maptiles-bench-{parcels}-"))
    os.environ["ONEMAP_HOME"] = str(home)
    os.environ.pop("ONEMAP_LAKE", None)
    from benchmarks.onemap_bench import generate
    from lake import delta_io
    from lake.registry import PARCELS
    from twin_viewer import maptiles
    from twin_viewer.maptiles.lakestate import current_state
    from twin_viewer.maptiles.overlays import source
    from twin_viewer.maptiles.tilemath import lonlat_to_tile

    t = time.perf_counter()
    generate(parcels)
    build_id = publish_parcels_as_gold()
    n = delta_io.read_table(PARCELS, ["parcel_id"]).num_rows
    print(f"== {n:,} parcels (generated and published in {time.perf_counter() - t:.0f} s; home {home})", flush=True)
    out: dict = {"parcels": n, "build_id": build_id}

    state = current_state()
    src = source("parcels", None, state)
    out["index_build_s"] = _timed(lambda: src.index(state))
    index_dir = state.cache_dir / "index" / "parcels" / src.key
    out["index_mb"] = sum(f.stat().st_size for f in index_dir.iterdir()) / 2 ** 20
    print(f"index build          {out['index_build_s']:8.1f} s   ({out['index_mb']:.0f} MB on disk)", flush=True)

    rng = np.random.default_rng(seed)
    geoms = shapely.from_wkb(delta_io.read_table(PARCELS, ["geometry"]).column("geometry")
                             .to_numpy(zero_copy_only=False)[rng.choice(n, size=max(points, tiles * 4), replace=False)])
    inner = shapely.get_coordinates(shapely.point_on_surface(geoms))
    for z in ZOOMS:
        addresses = list(dict.fromkeys(lonlat_to_tile(lon, lat, z) for lon, lat in inner))[:tiles]
        cold = [_timed(lambda a=a: maptiles.overlay_tile("parcels", z, *a)) for a in addresses]
        warm = [_timed(lambda a=a: maptiles.overlay_tile("parcels", z, *a)) for a in addresses]
        out[f"z{z}"] = {"cold": _pct(cold), "warm": _pct(warm)}
        print(f"z{z:<2} tiles ({len(addresses):3d})    cold p50 {out[f'z{z}']['cold']['p50_ms']:7.1f} ms  "
              f"p95 {out[f'z{z}']['cold']['p95_ms']:7.1f} ms   warm p50 {out[f'z{z}']['warm']['p50_ms']:6.2f} ms  "
              f"p95 {out[f'z{z}']['warm']['p95_ms']:6.2f} ms", flush=True)

    found = []
    lookups = [_timed(lambda p=p: found.append(maptiles.parcel_at(*p))) for p in inner[:points]]
    out["parcel_at"] = {**_pct(lookups), "found": sum(f is not None for f in found)}
    print(f"parcel_at ({len(lookups)})      p50 {out['parcel_at']['p50_ms']:7.2f} ms  "
          f"p95 {out['parcel_at']['p95_ms']:7.2f} ms   found {out['parcel_at']['found']}/{len(lookups)}", flush=True)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS             {out['peak_rss_mb']:8.0f} MB (generation included)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parcels", type=int, default=1_000_000)
    parser.add_argument("--tiles", type=int, default=60, help="tiles per zoom level")
    parser.add_argument("--points", type=int, default=300, help="parcel_at lookups")
    args = parser.parse_args()
    result = bench(args.parcels, args.tiles, args.points)
    folder = Path(__file__).resolve().parent / "results"
    folder.mkdir(exist_ok=True)
    (folder / "maptiles_bench.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
