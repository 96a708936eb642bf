"""One-map build benchmark: overlay of parcels with the three control lines, conflicts and indicators.

Same synthetic region, same run, three engines:
- DuckDB: the product path — the full dbt build of transforms/ (every model and test, control polygons split to
  ≤ 64 vertices, covered-by shortcut, ellipsoidal areas), then the gates and the gold publish of that build
  (timed apart) — and the same write–audit–publish for one district; besides the wall time of `dbt build`,
  dbt's own execution time of each model (the SQL without dbt's start-up, parsing, seeds and tests), printed
  stage by stage beside PostGIS's statements;
- PostGIS 15 (a throwaway cluster): the same overlay, conflicts and indicators, tuned as its users would
  (ST_Subdivide(64) pieces, GiST indexes, ANALYZE, parallel plans); the plan used is printed;
- SedonaDB 0.5.0 and DuckDB on the planar variant (planar ST_Area over the same pieces).
Each engine's totals per control-line type must agree within 0.01%. Engines run in child processes so each
peak RSS is its own (the sum over the child's process tree; for PostGIS that is the client, the server runs as its
own processes).

    python -m benchmarks.onemap_bench [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely

from benchmarks.process_peak import run_measured

LINE_TYPES = ("ecological_red_line", "permanent_basic_farmland", "urban_development_boundary")
CODES = np.array(["0101", "0103", "0201", "0301", "0305", "0404", "0701", "0702", "0601", "1003", "1101", "1103"])
SHARES = np.array([0.12, 0.12, 0.06, 0.35, 0.12, 0.05, 0.04, 0.05, 0.03, 0.02, 0.02, 0.02])
CONSTRUCTION = ("0701", "0702", "0601", "1003", "1103")
FARM_OK = ("0101", "0103")


# --- data ----------------------------------------------------------------------------------------------------------

def generate(n: int, seed: int = 0) -> None:
    """Write districts, parcels (Voronoi cells of n points over the demo region, cut by district borders) and
    about 500 control polygons (266 blobs cut into their parts by district borders) to the silver tables of
    $ONEMAP_HOME."""
    from lake import delta_io
    from lake.area import ellipsoidal_area_m2
    from lake.demo_region import _build_districts, region_outline
    from lake.registry import CONTROL_LINES, DISTRICTS, PARCELS

    rng = np.random.default_rng(seed)
    dist = _build_districts()
    outline = region_outline()
    xmin, ymin, xmax, ymax = outline.bounds
    pts = rng.uniform((xmin, ymin), (xmax, ymax), (int(n * 2.5), 2))  # ~48% fall inside the outline
    pts = pts[shapely.contains_xy(outline, pts[:, 0], pts[:, 1])][:n]
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=outline, ordered=True))
    # cells are cut by the district borders they cross, each part a parcel of its district, so parcels tessellate
    # every district and the areas reconcile (the audit then publishes)
    cell, district = shapely.STRtree(dist.geoms).query(cells, predicate="intersects")
    cells = cells[cell]
    crossing = ~shapely.contains(dist.geoms[district], cells)
    cells[crossing] = shapely.intersection(cells[crossing], dist.geoms[district[crossing]])
    cells, part_of = shapely.get_parts(cells, return_index=True)
    district = district[part_of]
    polygonal = (shapely.get_type_id(cells) == 3) & (shapely.area(cells) > 1e-10)  # no slivers under ~1 m²
    cells, district = cells[polygonal], district[polygonal]
    codes = rng.choice(CODES, size=len(cells), p=SHARES / SHARES.sum())
    _write(PARCELS, cells, {
        "parcel_id": [f"P{i:08d}" for i in range(len(cells))], "parcel_number": None,
        "survey_year": pa.array(np.full(len(cells), 2023, dtype=np.int32)),
        "district_code": dist.codes[district].tolist(), "land_class_code": codes.tolist(),
        "land_class_name": None, "locating_unit_code": None, "reported_area_m2": None, "deduction_factor": None,
        "deduction_area_m2": None, "urban_rural_code": np.where(np.isin(codes, CONSTRUCTION), "203", "").tolist(),
        "area_m2": ellipsoidal_area_m2(cells), "net_area_m2": ellipsoidal_area_m2(cells)}, delta_io)
    _write(DISTRICTS, dist.geoms, {"district_code": dist.codes.tolist(), "name": dist.names.tolist(),
                                   "area_m2": dist.areas}, delta_io)
    blobs, kinds, owners = [], [], []
    for i, poly in enumerate(dist.geoms):  # 38 districts × (3 + 2 + 2) = 266 blobs
        for k, kind in enumerate((0, 0, 0, 1, 1, 2, 2)):
            c = shapely.point_on_surface(poly) if kind == 2 and k == 5 else None
            if c is None:
                b = poly.bounds
                c = shapely.Point(rng.uniform(b[0], b[2]), rng.uniform(b[1], b[3]))
            r = rng.uniform(0.03, 0.12)
            angle = np.linspace(0, 2 * np.pi, 1500, endpoint=False)
            radius = r * (1 + 0.25 * np.sin(5 * angle + rng.uniform(0, 6)) + 0.05 * rng.standard_normal(1500))
            blob = shapely.Polygon(np.column_stack([c.x + radius * np.cos(angle), c.y + 0.87 * radius * np.sin(angle)]))
            blob = shapely.make_valid(blob).intersection(poly)
            for part in shapely.get_parts(blob):
                if part.geom_type == "Polygon" and part.area > 1e-6:
                    blobs.append(part), kinds.append(LINE_TYPES[kind]), owners.append(dist.codes[i])
    geoms = np.array(blobs, dtype=object)
    _write(CONTROL_LINES, geoms, {"line_id": [f"L{i:05d}" for i in range(len(geoms))], "line_type": kinds,
                                  "name": None, "district_code": owners, "reported_area_m2": None,
                                  "area_m2": ellipsoidal_area_m2(geoms)}, delta_io)


def _write(spec, geoms: np.ndarray, columns: dict, delta_io, chunk: int = 250_000) -> None:
    n = len(geoms)
    for start in range(0, n, chunk):
        g = geoms[start:start + chunk]
        b = shapely.bounds(g)
        data = {}
        for f in spec.schema:
            v = columns.get(f.name, None) if f.name not in ("geometry", "bbox_xmin", "bbox_ymin", "bbox_xmax",
                                                             "bbox_ymax") else None
            if f.name == "geometry":
                data[f.name] = pa.array(shapely.to_wkb(g), pa.binary())
            elif f.name.startswith("bbox_"):
                data[f.name] = pa.array(b[:, ("bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax").index(f.name)])
            elif v is None:
                data[f.name] = pa.nulls(len(g), f.type)
            else:
                data[f.name] = pa.array(v[start:start + chunk] if not isinstance(v, pa.Array) else
                                        v.slice(start, len(g))).cast(f.type)
        delta_io.append(spec, pa.table(data))


# --- engines (each runs in a child process: `python -m benchmarks.onemap_bench --engine NAME`) -------------------

def engine_duckdb_dbt(districts: list[str] | None) -> dict:
    """The product's write–audit–publish: the dbt build (timed alone, the figure compared with PostGIS), then the
    gates and the gold publish of that build."""
    from lake.duckdb_engine import connect
    from lake.transforms_project import build_database, target_dir
    from quality.wap import GateFailed, audit_and_publish, build_marts, new_build_id

    t = time.perf_counter()
    run_results = build_marts(districts)
    seconds = time.perf_counter() - t
    con = connect(str(build_database()))
    totals = dict(con.sql("select line_type, sum(overlap_m2) from int_parcel_control_overlap group by 1").fetchall())
    conflicts = dict(con.sql("select rule_id, count(*) from control_line_conflicts group by 1").fetchall())
    con.close()
    t = time.perf_counter()
    try:
        audit_and_publish(new_build_id(), run_results, districts)
        outcome = "published"
    except GateFailed as failed:
        outcome = "blocked: " + "; ".join(r.summary() for r in failed.failures)
    return {"seconds": seconds, "audit_publish_seconds": time.perf_counter() - t, "outcome": outcome,
            "models": model_seconds(target_dir() / "run_results.json"), "totals": totals, "conflicts": conflicts}


def model_seconds(run_results: Path) -> dict[str, float]:
    """dbt's own execution time of each model of the build: its SQL without dbt's start-up, parsing, seeds and
    tests. dbt runs two models at a time, so models running side by side each take longer than alone."""
    results = json.loads(run_results.read_text(encoding="utf-8"))["results"]
    return {r["unique_id"].removeprefix("model.onemap."): r["execution_time"] for r in results
            if r["unique_id"].startswith("model.")}


PLANAR_SQL = """
select line_type, sum(m2) as m2 from (
  select c.line_type,
         case when ST_Covers(c.geom, p.geom) then ST_Area(p.geom) else ST_Area(ST_Intersection(p.geom, c.geom)) end
         as m2
  from parcels p join pieces c on ST_Intersects(p.geom, c.geom)
) as o group by line_type"""


def _planar_inputs() -> tuple[pa.Table, pa.Table]:
    from lake.duckdb_engine import connect
    from lake.transforms_project import build_database

    con = connect(str(build_database()))
    parcels = con.sql("select parcel_id, st_aswkb(geom) as wkb from int_parcels_latest").to_arrow_table()
    pieces = con.sql("select line_type, st_aswkb(geom) as wkb from int_control_pieces").to_arrow_table()
    return parcels, pieces


def engine_duckdb_planar() -> dict:
    from lake.duckdb_engine import connect

    parcels, pieces = _planar_inputs()
    con = connect()
    con.register("parcels_arrow", parcels)
    con.register("pieces_arrow", pieces)
    con.execute("create table parcels as select parcel_id, st_geomfromwkb(wkb) as geom from parcels_arrow")
    con.execute("create table pieces as select line_type, st_geomfromwkb(wkb) as geom from pieces_arrow")
    t = time.perf_counter()
    totals = dict(con.sql(PLANAR_SQL).fetchall())
    return {"seconds": time.perf_counter() - t, "totals": totals}


def engine_sedonadb_planar() -> dict:
    import sedonadb

    parcels, pieces = _planar_inputs()
    con = sedonadb.connect()
    con.create_data_frame(parcels).to_view("parcels_wkb")
    con.create_data_frame(pieces).to_view("pieces_wkb")
    con.sql("select parcel_id, ST_GeomFromWKB(wkb) as geom from parcels_wkb").to_memtable().to_view("parcels")
    con.sql("select line_type, ST_GeomFromWKB(wkb) as geom from pieces_wkb").to_memtable().to_view("pieces")
    t = time.perf_counter()
    result = pa.table(con.sql(PLANAR_SQL))
    totals = dict(zip(result.column("line_type").to_pylist(), result.column("m2").to_pylist()))
    return {"seconds": time.perf_counter() - t, "totals": totals}


POSTGIS_OVERLAY = """create table overlap as
        select p.parcel_id, p.district_code, c.line_type,
               sum(case when ST_Covers(c.geom, p.geom) then ST_Area(p.geom::geography)
                        else ST_Area(ST_Intersection(p.geom, c.geom)::geography) end) as m2
        from parcels p join pieces c on ST_Intersects(p.geom, c.geom)
        group by 1, 2, 3"""
POSTGIS_SETTINGS = ["set max_parallel_workers_per_gather = 2", "set parallel_setup_cost = 10",
                    "set parallel_tuple_cost = 0.001"]
POSTGIS_BUILD = [  # (stage, statement); the stages are those of STAGES below
    ("pieces", "create table pieces as select line_type, ST_Subdivide(geom, 64) as geom from control_lines"),
    ("pieces", "create index on pieces using gist (geom)"),
    ("pieces", "analyze pieces"),
    ("overlay", POSTGIS_OVERLAY),
    ("conflicts", """create table conflicts as
        with o as (select parcel_id,
                          sum(m2) filter (where line_type = 'ecological_red_line') as red,
                          sum(m2) filter (where line_type = 'permanent_basic_farmland') as farm,
                          sum(m2) filter (where line_type = 'urban_development_boundary') as udb
                   from overlap group by parcel_id),
             p as (select parcels.*, ST_Area(geom::geography) as m2, coalesce(red, 0) as red,
                          coalesce(farm, 0) as farm, coalesce(udb, 0) as udb
                   from parcels left join o using (parcel_id))
        select 'red' as rule, parcel_id, red as m2 from p where is_construction and red > 200
        union all select 'farm', parcel_id, farm from p where not farm_ok and farm > 200
        union all select 'udb', parcel_id, m2 - udb from p where is_construction and m2 - udb > 200"""),
    ("indicators", """create table indicators as
        select district_code, sum(area_m2) as land, sum(area_m2) filter (where is_construction) as construction,
               100 * sum(area_m2) filter (where is_construction) / sum(area_m2) as development_intensity
        from parcels group by rollup (district_code)"""),
]
# stage -> the dbt models that compute it. PostGIS does the parcels stage (geometries parsed, land classes
# attached) while loading, which is timed apart (load_seconds) and left out of its build time.
STAGES = {"parcels": ("int_parcels_latest",), "pieces": ("int_control_pieces",),
          "overlay": ("int_parcel_control_overlap",), "conflicts": ("int_parcel_line_areas", "control_line_conflicts"),
          "indicators": ("district_indicators",)}
POSTGIS_EXPLAIN = POSTGIS_OVERLAY.replace("create table overlap as", "explain")


def engine_postgis() -> dict:
    import psycopg

    from benchmarks.postgis_cluster import postgis_cluster
    from lake import delta_io
    from lake.registry import CONTROL_LINES, PARCELS

    parcels = delta_io.read_table(PARCELS, columns=["parcel_id", "district_code", "land_class_code", "area_m2",
                                                    "geometry"])
    lines = delta_io.read_table(CONTROL_LINES, columns=["line_type", "geometry"])
    with postgis_cluster() as dsn, psycopg.connect(dsn, autocommit=True) as con:
        t_load = time.perf_counter()
        con.execute("create table parcels (parcel_id text, district_code text, land_class_code text, "
                    "area_m2 float8, is_construction bool, farm_ok bool, geom geometry(Polygon, 4490))")
        con.execute("create table control_lines (line_type text, geom geometry(Polygon, 4490))")
        with con.cursor().copy("copy parcels (parcel_id, district_code, land_class_code, area_m2, geom) "
                               "from stdin") as copy:
            for row in zip(*(parcels.column(c).to_pylist() for c in parcels.column_names)):
                copy.write_row((*row[:4], "SRID=4490;" + row[4].hex()))
        with con.cursor().copy("copy control_lines (line_type, geom) from stdin") as copy:
            for line_type, wkb in zip(lines.column("line_type").to_pylist(), lines.column("geometry").to_pylist()):
                copy.write_row((line_type, "SRID=4490;" + wkb.hex()))
        con.execute(f"update parcels set is_construction = land_class_code in {CONSTRUCTION}, "
                    f"farm_ok = land_class_code in {FARM_OK}")
        con.execute("create index on parcels using gist (geom)")
        con.execute("analyze parcels")
        load = time.perf_counter() - t_load
        for sql in POSTGIS_SETTINGS:
            con.execute(sql)
        stages = dict.fromkeys(STAGES, 0.0)
        for stage, sql in POSTGIS_BUILD:
            t = time.perf_counter()
            con.execute(sql)
            stages[stage] += time.perf_counter() - t
        plan = "\n".join(r[0] for r in con.execute(POSTGIS_EXPLAIN).fetchall())
        totals = dict(con.execute("select line_type, sum(m2) from overlap group by 1").fetchall())
    return {"seconds": sum(stages.values()), "stages": stages, "load_seconds": load, "totals": totals, "plan": plan}


ENGINES = {"duckdb_dbt": lambda a: engine_duckdb_dbt(None), "duckdb_incremental": lambda a: engine_duckdb_dbt(a),
           "duckdb_planar": lambda a: engine_duckdb_planar(), "sedonadb_planar": lambda a: engine_sedonadb_planar(),
           "postgis": lambda a: engine_postgis(), "generate": None}


def _child(engine: str, home: Path, arg: list[str] | None = None, n: int = 0) -> dict:
    result, peak = run_measured(["benchmarks.onemap_bench", "--engine", engine, "--n", str(n), "--arg", json.dumps(arg)],
                                {**os.environ, "ONEMAP_HOME": str(home)})
    return result | {"peak_rss_mb": peak * 2**20 / 1e6}


def _agree(a: dict, b: dict) -> float:
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in b)


def bench(n: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"onemap-bench-{n}-"))
    t = time.perf_counter()
    _child("generate", home, n=n)
    print(f"\n== {n:,} parcels (generated in {time.perf_counter() - t:.0f} s; home {home})", flush=True)
    out = {"parcels": n}
    for engine in ("duckdb_dbt", "duckdb_incremental", "duckdb_planar", "sedonadb_planar", "postgis"):
        arg = ["500101"] if engine == "duckdb_incremental" else None
        r = _child(engine, home, arg)
        out[engine] = r
        print(f"{engine:20s} {r['seconds']:8.2f} s   peak RSS {r['peak_rss_mb']:7.0f} MB"
              + (f"   then audit + publish {r['audit_publish_seconds']:.2f} s ({r['outcome']})"
                 if "outcome" in r else ""), flush=True)
    print("PostGIS plan of the overlay:\n" + out["postgis"]["plan"])
    d, p, i = out["duckdb_dbt"], out["postgis"], out["duckdb_incremental"]
    duckdb_stages = {stage: sum(d["models"][m] for m in models) for stage, models in STAGES.items()}
    print(f"{'stage':12s} {'DuckDB (dbt models)':>20s} {'PostGIS':>9s}")
    for stage, seconds in duckdb_stages.items():
        print(f"{stage:12s} {seconds:18.2f} s {p['stages'][stage]:7.2f} s"
              + ("   PostGIS: in its load, " + f"{p['load_seconds']:.1f} s" if stage == "parcels" else ""))
    out["ratios"] = {
        "postgis_over_duckdb_full_build": p["seconds"] / d["seconds"],
        "postgis_over_duckdb_same_stages": p["seconds"] / sum(duckdb_stages.values()),
        "postgis_over_duckdb_overlay": ((p["stages"]["pieces"] + p["stages"]["overlay"])
                                        / (duckdb_stages["pieces"] + duckdb_stages["overlay"])),
        "sedonadb_over_duckdb_planar": out["sedonadb_planar"]["seconds"] / out["duckdb_planar"]["seconds"],
        "incremental_share_of_full": i["seconds"] / d["seconds"],
        "incremental_share_with_audit_publish": ((i["seconds"] + i["audit_publish_seconds"])
                                                 / (d["seconds"] + d["audit_publish_seconds"])),
        "totals_rel_diff_postgis": _agree(d["totals"], p["totals"]),
        "totals_rel_diff_sedonadb_planar": _agree(out["duckdb_planar"]["totals"], out["sedonadb_planar"]["totals"]),
    }
    for k, v in out["ratios"].items():
        print(f"{k:38s} {v:.3g}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--engine")
    parser.add_argument("--arg", default="null")
    parser.add_argument("--n", type=int, default=0)
    args = parser.parse_args()
    if args.engine == "generate":
        generate(args.n)
        print("{}")
        return
    if args.engine:
        print(json.dumps(ENGINES[args.engine](json.loads(args.arg)), default=str))
        return
    results = [bench(n) for n in args.sizes]
    folder = Path(__file__).resolve().parent / "results"
    folder.mkdir(exist_ok=True)
    (folder / "onemap_bench.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
