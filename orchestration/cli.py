"""The `onemap` command line: demo, ingest, build, status, query, ui, release.

Errors are one line naming the file, row or rule and what to do; `--debug` shows the traceback.
"""

import functools
import json
import shutil
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lake.errors import OnemapError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="OneMap Twin: land survey, imagery and CIM/BIM feeds into one versioned lake and one map.")
out = Console()
err = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    _state["debug"] = debug


def _fail(exc: BaseException) -> None:
    if _state["debug"]:
        traceback.print_exception(exc)
    message = str(exc) if isinstance(exc, OnemapError) else f"{type(exc).__name__}: {exc} (rerun with --debug)"
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False)


def _guard(fn):
    """Run a command body turning errors into one clear line and exit code 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line
            _fail(exc)
    return wrapper


@app.command()
@_guard
def ingest(paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest now.")],
           feed: Annotated[Optional[str], typer.Option(help="Feed contract to use (default: the one whose landing "
                                                            "pattern matches the path).")] = None) -> None:
    """Ingest files or folders now through their feed contracts (bronze, silver, quarantine)."""
    from lake.batch_ingest import ingest_deliveries
    from lake.discovery import Delivery, contract_for, expand_paths

    deliveries = [Delivery(p, contract_for(p, feed)) for p in expand_paths(paths)]
    if not deliveries:
        raise OnemapError(f"nothing to ingest in {', '.join(map(str, paths))}")
    with _progress() as bar:
        task = bar.add_task("ingest", total=len(deliveries))
        results = ingest_deliveries(deliveries, lambda d, i, n: bar.update(task, completed=i,
                                                                           description=f"ingest {d.name}"))
    for r in results:
        line = (f"{r.status:9} {r.source}  read={r.rows_read} silver={r.rows_silver} "
                f"quarantined={r.rows_quarantined}" + (f"  {r.message}" if r.message else ""))
        (err if r.status == "failed" else out).print(line, highlight=False, soft_wrap=True)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


@app.command()
@_guard
def build(select: Annotated[Optional[str], typer.Option(help="Dagster asset selection, e.g. 'key:silver/parcels' "
                                                             "or 'group:survey'.")] = None,
          engine: Annotated[str, typer.Option(help="Who builds the one-map marts: duckdb (dbt-duckdb, default) or "
                                                   "spark (ONEMAP_SPARK_MASTER for a cluster).")] = "duckdb") -> None:
    """Materialize assets in-process (all by default); exit non-zero if any fails."""
    from orchestration.build import build as run_build

    outcome = run_build(select, engine)
    out.print(f"materialized {len(outcome.materialized)} assets in runs {', '.join(outcome.run_ids)}")
    if outcome.failed_checks:
        err.print(f"[yellow]checks not passed:[/] {', '.join(outcome.failed_checks)}", highlight=False)


@app.command()
@_guard
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
           history: Annotated[Optional[str], typer.Option(help="Show the Delta versions of TABLE "
                                                               "(e.g. silver/parcels).")] = None) -> None:
    """The current gold release, then every lake table: layer, Delta version, rows, last batch, quarantined rows."""
    from lake.releases import current_release
    from lake.settings import current_settings
    from lake.status import table_history, table_statuses
    from orchestration.release_cli import release_line

    if history:
        spec, rows = table_history(history)
        if as_json:
            out.print_json(json.dumps(rows, default=str))
            return
        table = Table(title=f"{spec.key} history")
        for column in ("version", "timestamp", "operation", "rows_written", "rows_removed", "predicate"):
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        out.print(table)
        return
    release = current_release()
    statuses = table_statuses(release)
    if as_json:
        out.print_json(json.dumps([s.as_dict() for s in statuses], default=str))
        return
    out.print(release_line(release), highlight=False, soft_wrap=True)
    table = Table(title=f"lake {current_settings().lake_uri}")
    for column in ("table", "layer", "version", "rows", "last batch", "last ingested", "quarantined"):
        table.add_column(column, justify="right" if column in ("version", "rows", "quarantined") else "left")
    for s in statuses:
        version = str(s.version) + (f" (head {s.head_version})" if s.head_version != s.version else "")
        table.add_row(s.table, s.layer, version, f"{s.rows:,}", s.last_batch or "", s.last_ingested_at or "",
                      "" if s.quarantined_rows is None else f"{s.quarantined_rows:,}")
    out.print(table)


@app.command()
@_guard
def query(sql: Annotated[str, typer.Argument(help="One read-only SQL statement over the lake views.")],
          fmt: Annotated[str, typer.Option("--format", help="table | csv | json | geojson | parquet")] = "table",
          output: Annotated[Optional[Path], typer.Option(help="Write to FILE instead of stdout.")] = None,
          limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 50) -> None:
    """Read-only DuckDB SQL over the lake (silver tables by name, others as <layer>_<name>)."""
    from lake.query import printable, run_query, write_result

    result = run_query(sql)
    if fmt == "table" and output is None:
        shown = printable(result.slice(0, limit))
        table = Table(show_lines=False)
        for name in shown.column_names:
            table.add_column(name)
        for row in shown.to_pylist():
            table.add_row(*("" if v is None else _short(str(v)) for v in row.values()))
        out.print(table)
        if result.num_rows > limit:
            out.print(f"({result.num_rows:,} rows, {limit} shown; use --format csv or --output for all)")
        return
    text = write_result(result, "csv" if fmt == "table" else fmt, output)
    if text is not None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        err.print(f"wrote {result.num_rows:,} rows to {output}")


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


DEMO_TOKEN_DAYS = 30


@app.command()
@_guard
def demo(parcels: Annotated[int, typer.Option(help="Parcels per survey year.")] = 20_000,
         seed: Annotated[int, typer.Option(help="Random seed (the region is deterministic by seed).")] = 0,
         serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the twin viewer when done.")]
         = True) -> None:
    """Generate the demo region into landing/, ingest it and materialize every asset, sign the governance center in
    (a printed link), then serve the twin."""
    from datetime import timedelta

    from lake.demo import write_demo
    from lake.settings import current_settings
    from orchestration.build import build as run_build
    from twin_viewer.server.twin_grants import GOVERNANCE_CENTER, governance_center_token

    settings = current_settings()
    with _progress() as bar:
        task = bar.add_task("demo region", total=None)

        def step(name: str, done: int, total: int) -> None:
            bar.update(task, description=f"demo region: {name}", completed=done, total=total)

        manifest, extras = write_demo(settings.landing, parcels=parcels, seed=seed, progress=step)
    out.print(f"demo region written to {manifest.landing}: " +
              ", ".join(f"{k}={v:,}" for k, v in {**manifest.counts, **extras}.items()))
    outcome = run_build(None)
    out.print(f"materialized {len(outcome.materialized)} assets")
    status(as_json=False, history=None)
    token = governance_center_token(timedelta(days=DEMO_TOKEN_DAYS))
    out.print(f"sign in to the twin as the {GOVERNANCE_CENTER} (token valid {DEMO_TOKEN_DAYS} days) while the server "
              f"runs:\n  http://127.0.0.1:8080/viewer/signin#token={token}", highlight=False, soft_wrap=True)
    if serve_after:
        serve()


@app.command()
@_guard
def quality(rebuild: Annotated[bool, typer.Option("--rebuild", help="Build the marts (dbt) before auditing.")]
            = False) -> None:
    """Run every quality rule on the latest one-map build, write the HTML report and print its path."""
    from lake.transforms_project import build_database
    from quality.gates import run_gates
    from quality.report import write_report
    from quality.wap import build_marts, new_build_id

    run_results = build_database().with_suffix(".run_results.json")
    if rebuild or not build_database().exists():
        run_results = build_marts()
    results = run_gates(build_database(), run_results)
    path = write_report(results, new_build_id())
    failed = [r for r in results if not r.passed]
    for r in failed:
        (err if r.blocks else out).print(r.summary(), highlight=False, soft_wrap=True)
    out.print(str(path), highlight=False, soft_wrap=True)


@app.command()
@_guard
def ui(port: Annotated[int, typer.Option(help="Port of the Dagster UI.")] = 3000) -> None:
    """The Dagster UI (webserver + daemon) on 127.0.0.1."""
    from orchestration.build import dagster_home
    from orchestration.foreground import run_until_interrupted

    dagster_home()
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    out.print(f"Dagster UI on http://127.0.0.1:{port} (Ctrl+C stops it)")
    code = run_until_interrupted([dagster, "dev", "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", str(port)])
    raise typer.Exit(code)


@app.command()
@_guard
def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port.")] = 8080) -> None:
    """The query API for departments (OGC API – Features, STAC API at /stac, SQL at /sql) and the viewer. It answers
    to the Host names in ONEMAP_ALLOWED_HOSTS (default 127.0.0.1, localhost, [::1]) and to --host; links are built
    from ONEMAP_PUBLIC_URL when set (behind a proxy, say)."""
    import uvicorn

    from twin_viewer.server.app import create_app
    from twin_viewer.server.responses import allow_host

    api = create_app()
    allow_host(api, host)
    out.print(f"OneMap Twin on http://{host}:{port}/ (the 3D twin at /viewer/, OGC API – Features for GIS clients "
              "at /, STAC at /stac, SQL at /sql; Ctrl+C stops it)", highlight=False, soft_wrap=True)
    uvicorn.run(api, host=host, port=port, log_level="warning")


def _access() -> typer.Typer:
    from orchestration.access_cli import access_app

    return access_app(_guard, out)


app.add_typer(_access(), name="access")


def _release() -> typer.Typer:
    from orchestration.release_cli import release_app

    return release_app(_guard, out)


app.add_typer(_release(), name="release")

if __name__ == "__main__":
    app()
