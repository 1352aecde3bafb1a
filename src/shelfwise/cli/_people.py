"""`users add|list`: the people and services of a shop and their roles."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import AsJson, Workdir, app, print_json, shop

__all__ = ["users_add", "users_app", "users_list"]

users_app = typer.Typer(
    help="People and services of the shop, their roles and API keys.", no_args_is_help=True
)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    workdir: Workdir,
    name: Annotated[str, typer.Option(help="Login name of the person or service.")],
    role: Annotated[str, typer.Option(help="admin, steward, scientist, engineer, analyst or service.")],
    as_json: AsJson = False,
) -> None:
    """Register a person or service and print their API key (shown once; stored hashed).
    The first person of a workdir must be an admin; afterwards only admins add people."""
    key = shop(workdir).add_person(name, role)
    if as_json:
        print_json({"name": name, "role": role, "api_key": key})
    else:
        typer.echo(f"{name} ({role}) registered. API key (shown once, keep it secret):\n{key}")


@users_app.command("list")
def users_list(workdir: Workdir, as_json: AsJson = False) -> None:
    """Who is registered, with which role (never the keys)."""
    rows = shop(workdir).people()
    if as_json:
        print_json(rows)
    else:
        for r in rows:
            typer.echo(
                f"{r['name']:<20} {r['role']:<10} {'active' if r['active'] else 'inactive':<8} {r['created_at']}"
            )
