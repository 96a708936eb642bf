"""Department queries as an attacker sends them: nothing outside the grant comes back, limits hold from outside.

The lake: a 40×40 parcel grid, columns 0-19 in district 500103 and 20-39 in 500112 (tests.api_server). The
agriculture department may read parcel_id, survey_year, land_class_code and geometry of 500112 only; transport was
granted nothing. Every statement below is tried twice: through the real HTTP server (guard + sandbox), and straight
into the sandbox with the guard skipped, because the sandbox alone must already hold.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from lake.access.catalog import Catalogs
from lake.access.grants import department, load
from lake.access.sandbox import QueryRefused, SandboxLimits
from tests.api_server import GRID_SIDE, department_lake
from twin_viewer.server.run import ServerProcess, serve_in_process

MEMORY_MB, TIMEOUT_S = 1024, 6.0


def outside_markers(home: Path) -> list[str]:
    """Values that only data outside agriculture's grant contains (none appears in any statement sent): the other
    district's code and parcel ids, ungranted area values, and housing's token id (in audit records)."""
    west = [f"G{r * GRID_SIDE + c:08d}" for r in range(GRID_SIDE) for c in range(GRID_SIDE // 2)]
    housing_token_id = tokens(home)["housing"].split("_")[1]
    return ["500103", "190000", housing_token_id, *west]


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("sandbox") / "home"
    home.mkdir()
    with department_lake(home) as (tokens_by_department, _):
        (home / "tokens.txt").write_text("\n".join(f"{d}={t}" for d, t in tokens_by_department.items()))
        yield home


def tokens(home: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (home / "tokens.txt").read_text().splitlines())


@pytest.fixture(scope="module")
def server(lake_home: Path) -> Iterator[ServerProcess]:
    with serve_in_process(lake_home, ONEMAP_SQL_TIMEOUT_S=str(TIMEOUT_S), ONEMAP_SQL_MEMORY_MB=str(MEMORY_MB)) as s:
        yield s


def attacks(lake: Path) -> list[str]:
    parquet = f"{lake}/silver/parcels/*/*.parquet"
    return [
        f'select * exclude (geometry) from (with "{parquet}" as (select 1) select 1) z, "{parquet}" limit 1',
        f"select * from (with \"{parquet}\" as (select 1) select * from \"{parquet}\") q",
        f"select * from '{parquet}'",
        f'select * from "{parquet}"',
        f"from '{parquet}'",
        f"select * from parcels, lateral (select * from '{parquet}') x",
        f"select (select count(*) from '{parquet}')",
        f"select * from read_parquet('{parquet}')",
        f"select * from parquet_scan('{parquet}')",
        f"select * from glob('{lake}/**')",
        f"select * from read_text('{lake}/silver/parcels/_delta_log/00000000000000000000.json')",
        f"select * from read_blob('{lake}/meta/audit_log/*')",
        f"select * from read_json_auto('{lake}/silver/parcels/_delta_log/*.json')",
        f"select * from delta_scan('{lake}/silver/parcels')",
        f"select * from st_read('{lake}/silver/parcels')",
        f"select * from '{lake}/meta/audit_log/*.parquet'",
        f"select * from '{lake}/**/*.parquet'",
        "select * from parcels as g(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10)",
        "select columns(*) from parcels",
        "select to_json(p) from parcels p",
        "select p from parcels p",
        "select struct_pack(*columns(*)) from parcels",
        "select * from silver_parcels where district_code <> '500112'",
        "select area_m2, locating_unit_code from parcels",
        "select * from meta_audit_log",
        "select * from hazard_points",
        "select * from duckdb_settings() where name like '%directories%'",
        "attach '/tmp/onemap-sandbox.db' as x; select 1",
        "copy (select * from parcels) to '/tmp/onemap-sandbox-leak.csv'",
        "set enable_external_access = true",
    ]


def assert_nothing_outside(home: Path, text: str) -> None:
    leaked = [m for m in outside_markers(home) if m in text]
    assert not leaked, f"data outside the grant came back: {leaked[:5]} in {text[:300]}"


@pytest.mark.parametrize("who", ["agriculture", "transport"])
def test_no_statement_reads_outside_the_grant_over_http(server: ServerProcess, lake_home: Path, who: str) -> None:
    headers = {"Authorization": f"Bearer {tokens(lake_home)[who]}"}
    for statement in attacks(lake_home / "lake"):
        response = httpx.post(f"{server.url}/sql", json={"sql": statement, "format": "csv"}, headers=headers,
                              timeout=60)
        assert response.status_code in (200, 400, 403), (statement, response.status_code, response.text)
        assert_nothing_outside(lake_home, response.text)
        if who == "transport":
            assert response.status_code != 200 or "G000" not in response.text, statement
    assert not Path("/tmp/onemap-sandbox-leak.csv").exists() and not Path("/tmp/onemap-sandbox.db").exists()


def test_the_sandbox_alone_holds_with_the_guard_skipped(lake_home: Path) -> None:
    """Statements sent straight to the worker, unchecked: each fails or returns only granted data."""
    catalogs = Catalogs(SandboxLimits(timeout_s=30, memory_bytes=MEMORY_MB * 2 ** 20, workers=1))
    try:
        catalogs.pool.wait_ready()
        for who in ("agriculture", "transport"):
            catalog = catalogs.get(department(load(), who))
            for statement in attacks(lake_home / "lake"):
                try:
                    rows = catalog.cursor().execute(statement).fetchall()
                except QueryRefused as refused:
                    assert refused.outcome == "error", (statement, refused)
                    assert "No files found" not in str(refused), refused  # a path never tells whether it exists
                    continue
                assert_nothing_outside(lake_home, repr(rows))
        granted = catalogs.get(department(load(), "agriculture")).cursor().execute(
            "select count(*), count(distinct parcel_id) from parcels").fetchone()
        assert granted == (GRID_SIDE * GRID_SIDE // 2,) * 2
    finally:
        catalogs.close()
    assert not Path("/tmp/onemap-sandbox-leak.csv").exists()


def test_existing_and_missing_lake_paths_answer_the_same(server: ServerProcess, lake_home: Path) -> None:
    headers = {"Authorization": f"Bearer {tokens(lake_home)['housing']}"}

    def description(path: str) -> str:
        response = httpx.post(f"{server.url}/sql", json={"sql": f"select * from read_parquet('{path}')"},
                              headers=headers, timeout=60)
        return response.json()["description"].replace(path, "PATH")

    lake = lake_home / "lake"
    assert description(f"{lake}/silver/parcels/*/*.parquet") == description(f"{lake}/nothing/here/*.parquet")


def test_legitimate_lambdas_comprehensions_and_ctes_work(server: ServerProcess, lake_home: Path) -> None:
    headers = {"Authorization": f"Bearer {tokens(lake_home)['agriculture']}"}
    for statement, expected in [
        ("select [x for x in range(3)] as l", "[0, 1, 2]"),
        ("select list_transform([1, 2], x -> x + 1) as l", "[2, 3]"),
        ("with a as (select parcel_id from parcels), b as (select count(*) as n from a) select n from b", "800"),
        ("with recursive r(n) as (select 1 union all select n + 1 from r where n < 4) select sum(n) from r", "10"),
    ]:
        response = httpx.post(f"{server.url}/sql", json={"sql": statement, "format": "csv"}, headers=headers,
                              timeout=60)
        assert response.status_code == 200, (statement, response.text)
        assert expected in response.text, (statement, response.text)


BOMBS = [
    "select len(generate_series(1, 400000000))",
    "select length(repeat('x', 1000000000))",
    "select len(l) from (select list(i) as l from (select unnest(range(400000000)) as i))",
    "select length(string_agg(repeat('x', 1000), '')) from (select unnest(range(5000000)) as i)",
    "with recursive r(n) as (select 1 union all select n + 1 from r) select count(*) from r",
    "select count(*) from parcels a, parcels b, parcels c, parcels d",
]


def wait_for_settled_workers(server: ServerProcess, settled_s: float = 8.0) -> None:
    """Until both workers run and the younger has had time to start (a replaced one imports for a few seconds)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pids = server.worker_pids()
        ages = [time.time() - psutil.Process(p).create_time() for p in pids if psutil.pid_exists(p)]
        if len(ages) == 2 and min(ages) > settled_s:
            return
        time.sleep(0.2)
    raise AssertionError(f"the sandbox workers did not come back: {server.worker_pids()}")


def test_memory_and_time_bombs_stop_at_the_limits_and_the_server_stays_small(server: ServerProcess,
                                                                              lake_home: Path) -> None:
    headers = {"Authorization": f"Bearer {tokens(lake_home)['housing']}"}
    bbox = {"bbox": "105.58,28.5,105.62,28.54", "limit": 20}
    assert httpx.get(f"{server.url}/collections/parcels/items", params=bbox, headers=headers, timeout=60) \
        .status_code == 200
    server_mb, workers_before = server.rss_mb(), server.worker_pids()
    peak_worker_mb = 0.0
    for bomb in BOMBS:
        wait_for_settled_workers(server)
        answer: dict[str, httpx.Response] = {}
        thread = threading.Thread(target=lambda: answer.setdefault("r", httpx.post(
            f"{server.url}/sql", json={"sql": bomb}, headers=headers, timeout=120)))
        started = time.monotonic()
        thread.start()
        served_meanwhile = False
        while thread.is_alive():
            for pid in server.worker_pids():
                try:
                    peak_worker_mb = max(peak_worker_mb, psutil.Process(pid).memory_info().rss / 2 ** 20)
                except psutil.NoSuchProcess:
                    pass
            if not served_meanwhile and time.monotonic() - started > 0.5:
                other = httpx.get(f"{server.url}/collections/parcels/items", params=bbox, headers=headers, timeout=60)
                served_meanwhile = other.status_code == 200
            time.sleep(0.1)
        thread.join()
        response = answer["r"]
        assert response.status_code == 400, (bomb, response.status_code, response.text)
        assert "memory limit" in response.text or "time limit" in response.text, (bomb, response.text)
        assert time.monotonic() - started < TIMEOUT_S + 15, bomb
        assert served_meanwhile or time.monotonic() - started < 1, bomb
    assert server.worker_pids() != workers_before  # the workers that hit a limit were replaced
    assert peak_worker_mb < MEMORY_MB + 800, peak_worker_mb  # the cap is address space added to ~500 MB at start
    assert server.rss_mb() < server_mb + 150, (server_mb, server.rss_mb())
    after = httpx.post(f"{server.url}/sql", json={"sql": "select count(*) as n from parcels", "format": "csv"},
                       headers=headers, timeout=60)
    assert after.status_code == 200 and "1600" in after.text


def test_answered_requests_survive_kill_9_in_the_audit(lake_home: Path) -> None:
    """Records are fsynced before the answer leaves: a killed server loses none, the next start moves them."""
    from lake.access.audit import AuditLog, read_audit

    headers = {"Authorization": f"Bearer {tokens(lake_home)['housing']}"}
    with serve_in_process(lake_home, ONEMAP_AUDIT_INTERVAL_S="3600") as killed:
        answered = [httpx.get(f"{killed.url}/collections/parcels/items", params={"limit": 1}, headers=headers,
                              timeout=60) for _ in range(5)]
        refused = httpx.post(f"{killed.url}/sql", json={"sql": "select 'no token sent' as probe"}, timeout=60)
        killed.kill()
    assert [r.status_code for r in answered] == [200] * 5 and refused.status_code == 401
    AuditLog(interval_s=3600).close()  # what a restarted server does first: claim and move the dead one's journal
    rows = {r["request_id"]: r for r in read_audit(limit=10_000).to_pylist()}
    for response in [*answered, refused]:
        assert response.headers["x-request-id"] in rows
    assert "no token sent" in rows[refused.headers["x-request-id"]]["parameters"]
    assert not list((lake_home / "access" / "audit-journal").glob("segment-*"))


def test_the_audit_can_be_neither_granted_nor_read(server: ServerProcess, lake_home: Path) -> None:
    from lake.access import grants
    from lake.errors import OnemapError

    for table in ("meta/audit_log", "meta/ingest_log", "meta/publish_log"):
        with pytest.raises(OnemapError, match="cannot be granted"):
            grants.grant("housing", table)
    headers = {"Authorization": f"Bearer {tokens(lake_home)['housing']}"}
    for statement in ("select * from meta_audit_log", "select * from audit_log"):
        response = httpx.post(f"{server.url}/sql", json={"sql": statement}, headers=headers, timeout=60)
        assert response.status_code == 403, response.text
    assert httpx.get(f"{server.url}/collections/meta_audit_log", headers=headers, timeout=60).status_code == 403
