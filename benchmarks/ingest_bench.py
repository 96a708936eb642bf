"""Ingest benchmark: survey parcels from one GeoPackage (CGCS2000 Gauss–Krüger zone 36, EPSG:4545) into silver.

End to end = read with GDAL, reproject to CGCS2000 lon/lat, validate every rule, ellipsoidal area, write
bronze + silver + quarantine Delta tables and the ingest log. Each size runs in a fresh child process so peak
memory (max RSS) is the ingest's own. The reference beside it is the bare GDAL read of the same file
(pyogrio.read_arrow), so the ratio says what validation, reprojection and the lake cost on top of reading.

    python -m benchmarks.ingest_bench [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyogrio
import shapely

CONTRACT = """
feed: bench_parcels
table: parcels
format: gpkg
landing: bench/*.gpkg
layer: DLTB
fields:
  parcel_id: BSM
  survey_year: {value: 2019}
  district_code: {field: ZLDWDM, slice: [0, 6]}
  land_class_code: DLBM
  reported_area_m2: TBMJ
  deduction_factor: KCXS
"""


def make_parcels(path: Path, n: int, seed: int = 0) -> None:
    """n Voronoi parcels (about 6 vertices each, like survey 图斑) in EPSG:4545 around 107.5E 29.5N."""
    rng = np.random.default_rng(seed)
    side = 400.0 * np.sqrt(n)  # 4 ha per parcel on a 4:1 strip centred on the zone's meridian
    x0, y0 = 500_000.0 - side / 2, 3_264_000.0
    points = shapely.multipoints(np.column_stack([rng.uniform(x0, x0 + side, n), rng.uniform(y0, y0 + side / 4, n)]))
    cells = shapely.get_parts(shapely.voronoi_polygons(points, extend_to=shapely.box(x0, y0, x0 + side, y0 + side / 4)))
    cells = shapely.intersection(cells, shapely.box(x0, y0, x0 + side, y0 + side / 4))[:n]
    classes = rng.choice(["0301", "0103", "0101", "0701", "0305", "1101", "0201"], len(cells))
    table = pa.table({
        "BSM": [f"500156{i:010d}" for i in range(len(cells))], "DLBM": classes,
        "ZLDWDM": ["500156001001"] * len(cells), "TBMJ": np.round(shapely.area(cells), 2),
        "KCXS": np.where(np.char.startswith(classes.astype(str), "01"), 0.08, 0.0),
        "geometry": pa.array(shapely.to_wkb(cells).tolist(), pa.binary()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pyogrio.write_arrow(table, path, driver="GPKG", layer="DLTB", crs="EPSG:4545", geometry_name="geometry",
                        geometry_type="Polygon")


def _child(mode: str, path: str) -> None:
    """Run one measured step in this (child) process and print its figures as JSON.

    Library imports and the contract lookup are process start-up, paid once, so they happen before the clock.
    """
    from lake.contracts import get_contract
    from lake.ingest import ingest_source
    from lake.readers import reader_for

    contract = get_contract("bench_parcels")
    reader_for(contract.format_of(path))
    start = time.perf_counter()
    if mode == "read":
        _, table = pyogrio.read_arrow(path, layer="DLTB")
        rows = table.num_rows
    else:
        result = ingest_source(Path(path), contract)
        assert result.status == "ingested", result
        rows = result.rows_silver
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - start}))


def _measure(mode: str, path: Path, env: dict[str, str]) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-m", "benchmarks.ingest_bench", "--child", mode, str(path)],
                         env=env, capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["peak_mb"] = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    return figures


def run(sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="onemap-bench-") as tmp:
            home = Path(tmp)
            (home / "feeds").mkdir()
            (home / "feeds" / "bench.yaml").write_text(textwrap.dedent(CONTRACT))
            gpkg = home / "landing" / "bench" / "DLTB.gpkg"
            make_parcels(gpkg, n)
            env = {**os.environ, "ONEMAP_HOME": str(home)}
            env.pop("ONEMAP_LAKE", None)
            read = _measure("read", gpkg, env)
            ingest = _measure("ingest", gpkg, env)
            rows.append({"parcels": ingest["rows"], "ingest_s": ingest["seconds"], "read_s": read["seconds"],
                         "parcels_per_s": ingest["rows"] / ingest["seconds"], "peak_mb": ingest["peak_mb"],
                         "ratio_vs_read": ingest["seconds"] / read["seconds"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    print(f"{'parcels':>10} {'ingest s':>9} {'parcels/s':>10} {'peak MB':>8} {'GDAL read s':>11} {'ingest/read':>11}")
    for r in run(args.sizes):
        print(f"{r['parcels']:>10,} {r['ingest_s']:>9.2f} {r['parcels_per_s']:>10,.0f} {r['peak_mb']:>8,.0f} "
              f"{r['read_s']:>11.2f} {r['ratio_vs_read']:>10.1f}x", flush=True)
    print("target: >= 50,000 parcels/s end to end and < 4,096 MB peak at 1M parcels (2 cores)")


if __name__ == "__main__":
    main()
