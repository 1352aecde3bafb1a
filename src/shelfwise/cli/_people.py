"""`users add|list`: the people and services of a shop and their roles."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import AsJson, Workdir, app, print_json, shop

__all__ = ["users_add", "users_app", "users_list", "users_revoke", "users_rotate_key"]

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


@users_app.command("revoke")
def users_revoke(
    workdir: Workdir,
    name: Annotated[str, typer.Option(help="Login name whose API key stops working.")],
) -> None:
    """Revoke a person's or service's API key (a leaked key, someone who left): the entry stays,
    inactive; running servers refuse the key from their next look at the register. Admins only."""
    shop(workdir).revoke_person(name)
    typer.echo(
        f"{name}: API key revoked (inactive; `users rotate-key --name {name} --reactivate` "
        "makes them active again with a new one)"
    )


@users_app.command("rotate-key")
def users_rotate_key(
    workdir: Workdir,
    name: Annotated[str, typer.Option(help="Login name that gets a new API key.")],
    reactivate: Annotated[
        bool,
        typer.Option(
            "--reactivate",
            help="A revoked person or service is active again with the new key (refused without it).",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """A new API key for a person or service (shown once); the old key stops working. A revoked
    one is refused unless --reactivate (then active again; audited as reactivated). Admins only."""
    key = shop(workdir).rotate_key(name, reactivate=reactivate)
    if as_json:
        print_json({"name": name, "api_key": key})
    else:
        typer.echo(f"{name}: new API key (shown once, keep it secret; the old one no longer works):\n{key}")
