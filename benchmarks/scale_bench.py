"""Scaling benchmark: the one-map build at 100k, 1M and 5M parcels on the DuckDB engine and the Spark engine.

Same synthetic region per size (benchmarks.onemap_bench.generate: Voronoi parcels tessellating the 38 districts,
~258 control polygons of 1,500 vertices), built by `quality.wap.build_marts` on:
- duckdb: dbt-duckdb, the default engine (the whole dbt build: models and tests);
- spark1, spark2: the Spark engine in local mode on 1 and 2 cores (dbt for seeds/staging/tests, Spark for the
  overlay-heavy marts), all in one child process each.
Each build runs in a child process; peak memory is the sum of RSS over its whole process tree (Python driver,
JVM, Python workers, dbt), sampled every 0.2 s. The engines' totals per control line must agree within 1e-6.

    python -m benchmarks.scale_bench [--sizes 100000 1000000 5000000] [--engines duckdb spark1 spark2]

Results are merged by size and engine into benchmarks/results/scale_bench.json, so engines can be measured
in separate runs; every engine's figures of a size must agree with the others'.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.process_peak import run_measured

ENGINES = {"duckdb": ("duckdb", 2), "spark1": ("spark", 1), "spark2": ("spark", 2)}
RESULTS = Path(__file__).resolve().parent / "results" / "scale_bench.json"


def run_build(engine: str) -> dict:
    """In the child: build the marts on `engine`, then read back the figures every engine must agree on."""
    from lake.duckdb_engine import connect
    from lake.transforms_project import build_database
    from quality.wap import build_marts

    started = time.perf_counter()
    build_marts(engine=engine)
    seconds = time.perf_counter() - started
    con = connect(str(build_database()))
    parcels, red, farm, urban = con.sql("""select count(*), sum(ecological_red_line_m2),
        sum(permanent_basic_farmland_m2), sum(urban_development_boundary_m2) from one_map_parcels""").fetchone()
    conflicts = dict(con.sql("select rule_id, count(*) from control_line_conflicts group by 1 order by 1").fetchall())
    return {"seconds": seconds, "parcels": parcels, "conflicts": conflicts,
            "totals": {"ecological_red_line": red, "permanent_basic_farmland": farm,
                       "urban_development_boundary": urban}}


def bench(n: int, engines: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"scale-{n}-") as folder:
        env = {**os.environ, "ONEMAP_HOME": folder, "ONEMAP_SPARK_DRIVER_MEMORY": "4g"}
        env.pop("ONEMAP_LAKE", None)
        subprocess.run([sys.executable, "-m", "benchmarks.onemap_bench", "--engine", "generate", "--n", str(n)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        result: dict = {"parcels": n}
        for name in engines:
            engine, cores = ENGINES[name]
            answer, peak = run_measured(["benchmarks.scale_bench", "--run", engine],
                                        {**env, "ONEMAP_SPARK_CORES": str(cores)})
            answer |= {"cores": cores, "peak_mib": round(peak), "parcels_per_s_per_core":
                       answer["parcels"] / answer["seconds"] / cores}
            result[name] = answer
            print(f"{n:>9,} {name:<7} {answer['seconds']:8.1f} s  peak {peak:8.0f} MiB  "
                  f"{answer['parcels_per_s_per_core']:9.0f} parcels/s/core", flush=True)
        return result


def _check_agreement(result: dict, engines: list[str]) -> None:
    base = result[engines[0]]
    for name in engines[1:]:
        other = result[name]
        assert other["parcels"] == base["parcels"] and other["conflicts"] == base["conflicts"], (name, other)
        for line, total in base["totals"].items():
            assert abs(other["totals"][line] - total) <= 1e-6 * total, (name, line, other["totals"][line], total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_build(args.run), default=str))
        return
    print(f"{'parcels':>9} {'engine':<7} {'time':>10}  {'peak memory':>17}  {'throughput':>20}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for n in args.sizes:
        # merged with the earlier runs of this size (same seed, same region): every engine must agree with them
        merged = results.get(str(n), {}) | bench(n, args.engines)
        _check_agreement(merged, [name for name in ENGINES if name in merged])
        results[str(n)] = merged
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
