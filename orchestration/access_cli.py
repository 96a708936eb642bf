"""`onemap access …`: departments, tokens, grants and the audit trail (logic in lake.access; this only wires).

Built by a function taking the main CLI's error guard and console, so errors read the same as every other command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table


def access_app(guard: Callable, out: Console) -> typer.Typer:
    access = typer.Typer(no_args_is_help=True, help="Department access: departments, tokens, grants, audit.")
    department = typer.Typer(no_args_is_help=True, help="Create, list and delete departments.")
    token = typer.Typer(no_args_is_help=True, help="Issue and revoke bearer tokens.")
    access.add_typer(department, name="department")
    access.add_typer(token, name="token")

    @department.command("create")
    @guard
    def department_create(name: str, description: Annotated[str, typer.Option(help="Who they are.")] = "") -> None:
        """Create a department (it can read nothing until granted)."""
        from lake.access import grants

        grants.create_department(name, description)
        out.print(f"department {name} created; grant tables with `onemap access grant {name} TABLE`")

    @department.command("delete")
    @guard
    def department_delete(name: str) -> None:
        """Delete a department and revoke all its tokens for good (a new department of that name is a stranger to
        them)."""
        from lake.access import grants

        revoked = grants.delete_department(name)
        out.print(f"department {name} deleted; {revoked} active token(s) revoked with it")

    @department.command("list")
    @guard
    def department_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Departments with their grants and token ids."""
        from lake.access import grants

        rows = grants.describe()
        if as_json:
            out.print_json(json.dumps(rows))
            return
        table = Table()
        for column in ("department", "id", "grants", "tokens"):
            table.add_column(column)
        for row in rows:
            granted = "\n".join(f"{key}: columns={', '.join(g['columns'] or ['all'])} "
                                f"districts={', '.join(g['districts'] or ['all'])}"
                                for key, g in sorted(row["grants"].items()))
            table.add_row(row["department"], row["id"], granted or "(none)", "\n".join(row["tokens"]) or "(none)")
        out.print(table)

    @token.command("issue")
    @guard
    def token_issue(department_name: Annotated[str, typer.Argument(metavar="DEPARTMENT")],
                    expires_in: Annotated[Optional[str], typer.Option(
                        "--expires-in", help="Refuse it after this long: 90m, 12h, 30d, 2w. Default: until "
                                             "revoked.")] = None) -> None:
        """Issue a token; it is shown once (only its hash is kept)."""
        from lake.access import grants

        token_id, secret = grants.issue_token(department_name, grants.duration(expires_in) if expires_in else None)
        until = f", valid for {expires_in}" if expires_in else ""
        out.print(f"token id {token_id} for {department_name}{until} (shown once, keep it safe):", highlight=False)
        print(secret)

    @token.command("revoke")
    @guard
    def token_revoke(token_id: str) -> None:
        """Revoke a token by its id (or the token itself); a running server refuses it at once."""
        from lake.access import grants

        grants.revoke_token(token_id)
        out.print(f"token {token_id} revoked")

    @access.command("grant")
    @guard
    def grant(department_name: Annotated[str, typer.Argument(metavar="DEPARTMENT")],
              table: Annotated[str, typer.Argument(help="layer/name, e.g. silver/parcels or gold/one_map_parcels")],
              column: Annotated[Optional[list[str]], typer.Option(help="Readable column (repeat); "
                                                                       "default all.")] = None,
              district: Annotated[Optional[list[str]], typer.Option(help="Readable district code (repeat); "
                                                                         "default all.")] = None) -> None:
        """Grant a table (all or some columns, all or some districts); replaces an earlier grant of it."""
        from lake.access import grants

        key = grants.grant(department_name, table, column, district)
        out.print(f"{department_name} may read {key}: columns={', '.join(column or ['all'])} "
                  f"districts={', '.join(district or ['all'])}")

    @access.command("revoke")
    @guard
    def revoke(department_name: Annotated[str, typer.Argument(metavar="DEPARTMENT")], table: str) -> None:
        """Withdraw a department's grant on a table."""
        from lake.access import grants

        grants.revoke(department_name, table)
        out.print(f"{department_name} may no longer read {table}")

    @access.command("audit")
    @guard
    def audit(limit: Annotated[int, typer.Option(help="Latest N requests.")] = 50,
              department_name: Annotated[Optional[str], typer.Option("--department")] = None,
              as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """The latest API requests: who, what, when, rows, duration, outcome (refused ones included)."""
        from lake.access.audit import read_audit

        rows = read_audit(limit, department_name).to_pylist()
        if as_json:
            out.print_json(json.dumps(rows, default=str))
            return
        table = Table()
        for column in ("at", "department", "endpoint", "parameters", "status", "outcome", "rows", "ms", "message"):
            table.add_column(column, overflow="fold")
        for r in rows:
            table.add_row(f"{r['at']:%Y-%m-%d %H:%M:%S}", r["department"] or "-", r["method"] + " " + r["endpoint"],
                          (r["parameters"] or "")[:120], str(r["status"]), r["outcome"],
                          "" if r["rows"] is None else str(r["rows"]), f"{r['duration_ms']:.0f}", r["message"] or "")
        out.print(table)

    return access
