"""The dbt project's location, its vars (lake URIs from the table registry) and a dbt runner.

The dbt project lives in transforms/. dbt reads the silver tables through `delta_scan('<uri>')` with URIs passed
as the `tables` var, so the registry stays the only place that knows lake paths. The marts are built into
`$ONEMAP_HOME/onemap_build.duckdb`, the audit area of write–audit–publish; only the publish step writes gold/.

The districts an incremental build rebuilds are rows of the build database's `rebuild_districts` table, not a
var: dbt re-parses the whole project whenever `--vars` change, so vars that stay the same for a home keep every
build on partial parsing (a district rebuild is then mostly the districts' SQL, not dbt's start-up).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lake.delta_io import ensure_table
from lake.duckdb_engine import connect
from lake.errors import OnemapError
from lake.registry import SILVER_TABLES
from lake.settings import REPO_ROOT, current_settings

PROJECT_DIR = REPO_ROOT / "transforms"
MANIFEST = PROJECT_DIR / "target" / "manifest.json"
# Sources the models read; an absent table is created empty so a region without imagery still builds.
SOURCE_TABLES = ("parcels", "control_lines", "districts", "buildings", "hazard_points", "stac_items")


def build_database() -> Path:
    return current_settings().home / "onemap_build.duckdb"


def target_dir() -> Path:
    """dbt's target/ of this home's builds, so builds of different homes never share run results."""
    return current_settings().home / "dbt_target"


def keep_run_results(target_dir: Path) -> Path:
    """Copy a dbt invocation's run_results.json beside the build database, where the gates read it."""
    kept = build_database().with_suffix(".run_results.json")
    shutil.copyfile(target_dir / "run_results.json", kept)
    return kept


def configure_environment() -> None:
    """Point the profile at this home's build database (dbt reads it through env_var)."""
    os.environ["ONEMAP_DBT_DATABASE"] = str(build_database())
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


def dbt_vars() -> dict:
    """The vars of every dbt invocation of this home (the same each time, see the module doc)."""
    return {"tables": {s.key: s.uri for s in SILVER_TABLES if s.name in SOURCE_TABLES}}


def ensure_sources() -> None:
    for spec in SILVER_TABLES:
        if spec.name in SOURCE_TABLES:
            ensure_table(spec)


def record_rebuilt_districts(districts: list[str] | None) -> None:
    """Write the districts the next incremental build rebuilds (macro `district_filter` reads them)."""
    build_database().parent.mkdir(parents=True, exist_ok=True)
    con = connect(str(build_database()))
    try:
        con.execute("create or replace table rebuild_districts as select unnest(?::varchar[]) as district_code",
                    [sorted(set(districts or []))])
    finally:
        con.close()


def prepare_dbt_build(districts: list[str] | None = None) -> list[str]:
    """Get the sources and the district list ready; return the `dbt build` arguments (seeds, models, tests).

    A whole-region build (`districts` None or empty) replaces the incremental models (`--full-refresh`).
    """
    ensure_sources()
    record_rebuilt_districts(districts)
    args = ["build", "--vars", json.dumps(dbt_vars())]
    return args if districts else [*args, "--full-refresh"]


def run_dbt(args: list[str]) -> None:
    """Run dbt in a child process (as dagster-dbt does), so no DuckDB lock outlives it; raise naming failed nodes."""
    configure_environment()
    build_database().parent.mkdir(parents=True, exist_ok=True)
    target = [] if args[0] == "parse" else ["--target-path", str(target_dir()), "--log-path", str(target_dir()),
                                            "--log-level-file", "info"]
    dbt = Path(sys.executable).parent / "dbt"
    run = subprocess.run([str(dbt), *args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
                          "--log-level", "warn", *target], capture_output=True, text=True, env=os.environ.copy())
    if run.returncode == 0:
        return
    failed = []
    results = target_dir() / "run_results.json"
    if target and results.exists():
        failed = [f"{r['unique_id']}: {(r.get('message') or r['status'])[:300]}"
                  for r in json.loads(results.read_text(encoding="utf-8"))["results"] if r["status"] in ("error", "fail")]
    detail = "; ".join(failed[:5]) or (run.stdout + run.stderr).strip()[-1500:]
    raise OnemapError(f"dbt {args[0]} failed in {PROJECT_DIR}: {detail}")


def ensure_manifest() -> Path:
    """`dbt parse` when the manifest is missing or older than a project file (Dagster loads assets from it)."""
    newest = max(p.stat().st_mtime for p in PROJECT_DIR.rglob("*") if p.suffix in (".sql", ".yml", ".csv")
                 and "target" not in p.parts)
    if not MANIFEST.exists() or MANIFEST.stat().st_mtime < newest:
        run_dbt(["parse", "--vars", json.dumps(dbt_vars())])
    return MANIFEST
