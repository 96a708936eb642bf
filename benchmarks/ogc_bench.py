"""OGC API – Features benchmark: bbox queries returning about 1,000 parcels out of 1,000,000, against this server
(`onemap serve`: DuckDB over Delta, bbox-column skipping + ST_Intersects) and against pygeoapi backed by PostGIS
(GiST index), same data, same bboxes, same run. Prints p50/p95 of each and the ratio, and checks that both return
the same features for every bbox.

    python -m benchmarks.ogc_bench [--parcels 1000000] [--queries 50]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psycopg
import shapely

from lake import delta_io
from lake.access import grants
from lake.domain import district_codes
from lake.grid_parcels import ORIGIN, write_parcel_grid
from lake.registry import PARCELS
from benchmarks.postgis_cluster import postgis_cluster
from lake.settings import REPO_ROOT
from twin_viewer.server.run import free_port

CELL = 0.004
COLUMNS = ["parcel_id", "survey_year", "district_code", "land_class_code", "area_m2"]
TARGET_P95_MS = 150.0


def fixed_bboxes(side: int, count: int, cells: int, seed: int = 6) -> list[tuple[float, float, float, float]]:
    """`count` boxes of cells×cells grid cells at fixed random places (about cells² parcels each)."""
    rng = random.Random(seed)
    boxes = []
    for _ in range(count):
        col, row = rng.randrange(0, side - cells - 1), rng.randrange(0, side - cells - 1)
        x, y = ORIGIN[0] + col * CELL + CELL * 0.01, ORIGIN[1] + row * CELL + CELL * 0.01
        boxes.append((round(x, 6), round(y, 6), round(x + cells * CELL - CELL * 0.02, 6),
                      round(y + cells * CELL - CELL * 0.02, 6)))
    return boxes


def load_postgis(dsn: str) -> float:
    """Copy the lake's parcels into PostGIS (EWKB, SRID 4490), index and analyze; returns seconds."""
    started = time.perf_counter()
    table = delta_io.read_table(PARCELS, columns=[*COLUMNS, "geometry"])
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("CREATE TABLE parcels (parcel_id text PRIMARY KEY, survey_year int, district_code text, "
                    "land_class_code text, area_m2 double precision, geometry geometry(Polygon, 4490))")
        with con.cursor().copy("COPY parcels FROM STDIN") as copy:
            for batch in table.to_batches(200_000):
                geoms = shapely.set_srid(shapely.from_wkb(batch.column("geometry").to_numpy(zero_copy_only=False)),
                                         4490)
                ewkb = shapely.to_wkb(geoms, hex=True, include_srid=True)
                values = [batch.column(c).to_pylist() for c in COLUMNS]
                for row in zip(*values, ewkb.tolist()):
                    copy.write_row(row)
        con.execute("CREATE INDEX parcels_geometry ON parcels USING gist (geometry)")
        con.execute("VACUUM ANALYZE parcels")
    return time.perf_counter() - started


def _wait(url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server at {url} did not start: {process.stderr.read() if process.stderr else ''}")
            time.sleep(0.2)


@contextmanager
def process(cmd: list[str], env: dict[str, str], url: str) -> Iterator[None]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=REPO_ROOT)
    try:
        _wait(url, proc)
        yield
    finally:
        proc.terminate()
        proc.wait(30)


PYGEOAPI_CONFIG = """
server:
  bind: {{host: 127.0.0.1, port: {port}}}
  url: http://127.0.0.1:{port}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  languages: [en-US]
  limits: {{default_items: 10, max_items: 10000}}
  map: {{url: 'http://127.0.0.1/{{z}}/{{x}}/{{y}}.png', attribution: none}}
logging: {{level: ERROR}}
metadata:
  identification: {{title: bench, description: bench, keywords: [bench], keywords_type: theme,
                   terms_of_service: none, url: 'http://127.0.0.1'}}
  license: {{name: CC-BY 4.0, url: 'http://127.0.0.1'}}
  provider: {{name: bench, url: 'http://127.0.0.1'}}
  contact: {{name: bench, position: bench, address: bench, city: bench, stateorprovince: bench, postalcode: '0',
            country: CN, phone: '0', fax: '0', email: bench@example.invalid, url: 'http://127.0.0.1', hours: '0',
            instructions: none, role: pointOfContact}}
resources:
  parcels:
    type: collection
    title: parcels
    description: parcels
    keywords: [parcels]
    extents:
      spatial: {{bbox: [105.5, 28.5, 110.0, 32.5], crs: 'http://www.opengis.net/def/crs/OGC/1.3/CRS84'}}
    providers:
      - type: feature
        name: benchmarks.pygeoapi_postgis.PostGISProvider
        data: {{dsn: '{dsn}'}}
        id_field: parcel_id
        table: parcels
        geom_field: geometry
"""


@contextmanager
def pygeoapi_server(dsn: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    config = workdir / "pygeoapi.yml"
    config.write_text(textwrap.dedent(PYGEOAPI_CONFIG.format(port=port, dsn=dsn)), encoding="utf-8")
    openapi = workdir / "pygeoapi-openapi.yml"
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi),
           "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([str(Path(sys.executable).parent / "pygeoapi"), "openapi", "generate", str(config),
                    "--output-file", str(openapi)], env=env, check=True, capture_output=True, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "uvicorn", "pygeoapi.starlette_app:APP", "--host", "127.0.0.1", "--port",
                  str(port), "--log-level", "warning"], env, f"{url}/"):
        yield url


@contextmanager
def onemap_server(home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    grants.create_department("bench")
    grants.grant("bench", "silver/parcels", columns=[*COLUMNS, "geometry"])
    _, token = grants.issue_token("bench")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "orchestration.cli", "serve", "--port", str(port)],
                 {**os.environ, "ONEMAP_HOME": str(home)}, url):
        yield url, {"Authorization": f"Bearer {token}"}


def measure(url: str, headers: dict[str, str], bboxes: list, limit: int) -> tuple[list[float], list[set[str]]]:
    """Sequential requests over one keep-alive connection, after a warm-up over the first five boxes."""
    timings, answers = [], []
    with httpx.Client(headers=headers, timeout=120) as client:
        for box in bboxes[:5]:
            client.get(f"{url}/collections/parcels/items", params={"bbox": ",".join(map(str, box)), "limit": limit,
                                                                   "f": "json"}).raise_for_status()
        for box in bboxes:
            started = time.perf_counter()
            response = client.get(f"{url}/collections/parcels/items",
                                  params={"bbox": ",".join(map(str, box)), "limit": limit, "f": "json"})
            timings.append((time.perf_counter() - started) * 1000)  # the whole body received, not yet parsed
            response.raise_for_status()
            features = response.json()["features"]
            answers.append({str(f["id"]).split("~")[0] for f in features})
    return timings, answers


def percentiles(timings: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return statistics.median(timings), cuts[94]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parcels", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--features", type=int, default=1000, help="parcels per bbox, about")
    args = parser.parse_args()
    side = math.isqrt(args.parcels)
    cells = max(1, round(math.sqrt(args.features)))
    bboxes = fixed_bboxes(side, args.queries, cells)
    limit = 10_000
    with tempfile.TemporaryDirectory(prefix="onemap-ogc-bench-") as tmp:
        home = Path(tmp) / "home"
        os.environ["ONEMAP_HOME"] = str(home)
        started = time.perf_counter()
        rows = write_parcel_grid(side, list(district_codes()))
        print(f"lake: {rows:,} parcels ({side}×{side} grid, {len(district_codes())} districts) written in "
              f"{time.perf_counter() - started:.1f} s; {len(bboxes)} bboxes of {cells}×{cells} cells")
        with onemap_server(home) as (url, headers):
            ours, our_answers = measure(url, headers, bboxes, limit)
        with postgis_cluster() as dsn:
            print(f"PostGIS: loaded and indexed in {load_postgis(dsn):.1f} s")
            with pygeoapi_server(dsn, Path(tmp)) as url:
                theirs, their_answers = measure(url, {}, bboxes, limit)
    mismatched = sum(a != b for a, b in zip(our_answers, their_answers))
    counts = [len(a) for a in our_answers]
    p50, p95 = percentiles(ours)
    q50, q95 = percentiles(theirs)
    print(f"features per query: min {min(counts)}, median {int(np.median(counts))}, max {max(counts)}; "
          f"queries whose features differ between the two servers: {mismatched}")
    print(f"{'server':32} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'onemap (DuckDB + Delta)':32} {p50:8.1f} {p95:8.1f}")
    print(f"{'pygeoapi + PostGIS':32} {q50:8.1f} {q95:8.1f}")
    print(f"ratio pygeoapi/onemap: p50 {q50 / p50:.2f}×, p95 {q95 / p95:.2f}×; "
          f"target p95 < {TARGET_P95_MS:.0f} ms: {'met' if p95 < TARGET_P95_MS else 'NOT met'}")
    if mismatched:
        sys.exit(1)


if __name__ == "__main__":
    main()
