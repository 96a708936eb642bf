"""CIM/BIM ingest benchmark: LoD2 buildings/s from CityGML and CityJSON, BIM buildings/s from IFC, into the lake.

The models come from the demo generator (gable-roof LoD2 houses in 渝中区, EPSG:4545; IFC buildings of 2–8
storeys, each storey four walls and a slab, IfcMapConversion). Each format is timed twice: the reader alone
(parse, triangulate, georeference every vertex to ENU, footprint) and end to end (plus validation and the Delta
writes of buildings, meshes, bronze and the ingest log), each in a fresh lake.

    python -m benchmarks.cim_bench [--citygml 1000 5000] [--ifc 50]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lake.contracts import get_contract
from lake.demo_cim import houses, write_citygml, write_cityjson, write_ifc
from lake.ingest import ingest_source
from lake.readers import read_delivery

WRITERS: dict[str, tuple[str, str, Callable[[Path, list], None]]] = {
    "citygml": ("demo_cim_citygml", "bench.gml", write_citygml),
    "cityjson": ("demo_cim_cityjson", "bench.city.json", write_cityjson),
    "ifc": ("demo_cim_ifc", "bench.ifc", write_ifc),
}


def measure(fmt: str, n: int) -> dict:
    feed, name, writer = WRITERS[fmt]
    with tempfile.TemporaryDirectory(prefix="onemap-cim-bench-") as tmp:
        os.environ["ONEMAP_HOME"] = tmp
        os.environ.pop("ONEMAP_LAKE", None)
        path = Path(tmp) / "landing" / "cim" / name
        path.parent.mkdir(parents=True)
        block = houses(n, seed=7)
        start = time.perf_counter()
        writer(path, block)
        written = time.perf_counter() - start
        contract = get_contract(feed)
        start = time.perf_counter()
        batch = read_delivery(str(path), contract)
        read = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        result = ingest_source(path, contract)
        ingest, ingest_cpu = time.perf_counter() - start, time.process_time() - cpu
        assert result.rows_silver == n, result
        triangles = sum(batch.children["building_meshes"].column("triangle_count").to_pylist())
    return {"format": fmt, "buildings": n, "triangles": triangles, "write_s": written,
            "read_s": read, "ingest_s": ingest, "ingest_cpu_s": ingest_cpu, "per_s": n / ingest,
            "per_cpu_s": n / ingest_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--citygml", type=int, nargs="*", default=[1_000, 5_000])
    parser.add_argument("--cityjson", type=int, nargs="*", default=[1_000])
    parser.add_argument("--ifc", type=int, nargs="*", default=[50])
    args = parser.parse_args()
    print(f"{'format':>8} {'buildings':>9} {'triangles':>10} {'write s':>8} {'read s':>7} {'ingest s':>8} "
          f"{'buildings/s':>11} {'CPU s':>6} {'per CPU s':>9}")
    for fmt in ("citygml", "cityjson", "ifc"):
        for n in getattr(args, fmt):
            r = measure(fmt, n)
            print(f"{fmt:>8} {n:>9,} {r['triangles']:>10,} {r['write_s']:>8.2f} {r['read_s']:>7.2f} "
                  f"{r['ingest_s']:>8.2f} {r['per_s']:>11,.0f} {r['ingest_cpu_s']:>6.2f} {r['per_cpu_s']:>9,.0f}",
                  flush=True)
    print("read = reader only (parse, triangulate, ENU, footprint); ingest = read + validate + Delta writes, wall "
          "clock and this process's CPU time (the fair figure on a shared machine); 2 cores")


if __name__ == "__main__":
    main()
