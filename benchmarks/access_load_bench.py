"""Department access under load: does the server's memory stay flat, and does an OGC bbox query stay fast?

Starts `onemap serve` as a child process over a parcel grid and a STAC catalog, warms it up, then runs N clients for
D seconds, each mixing OGC bbox pages, STAC searches and SQL aggregates. Prints the server's resident memory (its own
process, measured from outside with psutil) after warm-up and at the end, the sandbox workers' memory, request
counts and p50/p95 per kind. Targets (issue: department access that cannot leak): end RSS within 300 MB of the
start, OGC bbox p95 under 150 ms, with 8 clients for 60 s.

    python -m benchmarks.access_load_bench [--clients 8] [--seconds 60] [--grid 400]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from lake.access import grants
from lake.grid_parcels import ORIGIN, write_parcel_grid
from tests.api_server import write_stac_items
from twin_viewer.server.run import ServerProcess, serve_in_process

CELL = 0.004


def prepare(home: Path, grid: int) -> str:
    os.environ["ONEMAP_HOME"] = str(home)
    write_parcel_grid(grid, ["500103", "500112"])
    write_stac_items()
    grants.create_department("load")
    for table in ("silver/parcels", "silver/stac_items", "silver/stac_assets"):
        grants.grant("load", table)
    return grants.issue_token("load")[1]


def requests_of(url: str, grid: int, rng: random.Random) -> tuple[str, str, dict]:
    """One request of a random kind: (kind, method, httpx kwargs)."""
    kind = rng.choice(["ogc", "ogc", "stac", "sql"])
    if kind == "ogc":
        x = ORIGIN[0] + rng.uniform(0, (grid - 10) * CELL)
        y = ORIGIN[1] + rng.uniform(0, (grid - 10) * CELL)
        bbox = f"{x:.5f},{y:.5f},{x + 8 * CELL:.5f},{y + 8 * CELL:.5f}"
        return kind, "GET", {"url": f"{url}/collections/parcels/items", "params": {"bbox": bbox, "limit": 100}}
    if kind == "stac":
        return kind, "POST", {"url": f"{url}/stac/search",
                              "json": {"bbox": [106.0, 29.0, 106.5, 29.2], "limit": 10}}
    district = rng.choice(["500103", "500112"])
    sql = ("select land_class_code, count(*) as n, sum(area_m2) as area from parcels "
           f"where district_code = '{district}' group by all order by 1")
    return kind, "POST", {"url": f"{url}/sql", "json": {"sql": sql}}


def client(server: ServerProcess, token: str, grid: int, seconds: float, seed: int,
           timings: dict[str, list[float]], failures: list[str]) -> None:
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        while time.monotonic() < deadline:
            kind, method, kwargs = requests_of(server.url, grid, rng)
            started = time.perf_counter()
            response = http.request(method, **kwargs)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                failures.append(f"{kind} {response.status_code} {response.text[:120]}")
            timings[kind].append(elapsed)


def workers_mb(server: ServerProcess) -> float:
    return sum(psutil.Process(p).memory_info().rss for p in server.worker_pids()) / 2 ** 20


def run(clients: int, seconds: float, grid: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        token = prepare(home, grid)
        with serve_in_process(home) as server:
            warm = {k: [] for k in ("ogc", "stac", "sql")}
            client(server, token, grid, 5, 0, warm, [])
            start_mb = server.rss_mb()
            timings: dict[str, list[float]] = {k: [] for k in ("ogc", "stac", "sql")}
            failures: list[str] = []
            threads = [threading.Thread(target=client, args=(server, token, grid, seconds, i + 1, timings, failures))
                       for i in range(clients)]
            for thread in threads:
                thread.start()
            peak_mb = start_mb
            while any(t.is_alive() for t in threads):
                peak_mb = max(peak_mb, server.rss_mb())
                time.sleep(0.5)
            end_mb, end_workers_mb = server.rss_mb(), workers_mb(server)
    print(f"{clients} clients × {seconds:g} s over a {grid}×{grid} parcel grid ({grid * grid:,} parcels)")
    print(f"server RSS: {start_mb:.0f} MB after warm-up → {end_mb:.0f} MB at the end (peak {peak_mb:.0f} MB, "
          f"Δ {end_mb - start_mb:+.0f} MB; target within 300 MB); sandbox workers {end_workers_mb:.0f} MB")
    result = {"start_mb": start_mb, "end_mb": end_mb}
    for kind, values in timings.items():
        if values:
            ordered = sorted(values)
            p95 = ordered[int(0.95 * (len(ordered) - 1))] * 1000
            print(f"{kind:5s} {len(values):6d} requests  p50 {statistics.median(values) * 1000:6.1f} ms  "
                  f"p95 {p95:6.1f} ms" + ("  (target p95 < 150 ms)" if kind == "ogc" else ""))
            result[f"{kind}_p95_ms"] = p95
    print(f"non-200 answers: {len(failures)}" + (f" (first: {failures[0]})" if failures else ""))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--grid", type=int, default=400, help="parcels per side of the grid")
    args = parser.parse_args()
    run(args.clients, args.seconds, args.grid)


if __name__ == "__main__":
    main()
