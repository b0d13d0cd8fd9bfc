"""``ser-adapt keys ...``: create, list and revoke per-tenant API keys of the HTTP service."""
from __future__ import annotations

import typer

from ._shared import cli_errors, open_cli_store, store_option

keys = typer.Typer(help="Per-tenant API keys for `ser-adapt serve` (stored hashed).", no_args_is_help=True)


@keys.command("create")
@cli_errors
def create(tenant: str = typer.Option(..., "--tenant", help="tenant name ([A-Za-z0-9_.-], up to 64)"),
           read_only: bool = typer.Option(False, "--read-only", help="key may only read and predict"),
           store: str = store_option()) -> None:
    """Create a key and print it once; only its SHA-256 hash is stored."""
    with open_cli_store(store) as s:
        key = s.create_key(tenant, read_only=read_only)
    typer.echo(key)


@keys.command("list")
@cli_errors
def list_(tenant: str = typer.Option(None, "--tenant"), store: str = store_option()) -> None:
    """List key ids (never the keys) with tenant, mode and state."""
    import datetime as dt

    with open_cli_store(store) as s:
        for k in s.list_keys(tenant):
            when = dt.datetime.fromtimestamp(k.created_at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
            typer.echo(f"{k.key_id}\t{k.tenant}\t{'read-only' if k.read_only else 'read-write'}\t"
                       f"{'revoked' if k.revoked else 'active'}\t{when}")


@keys.command("revoke")
@cli_errors
def revoke(key_id: str = typer.Argument(..., help="key id (the 12 hex digits after 'sa_')"),
           store: str = store_option()) -> None:
    """Revoke a key: requests with it get 401 from then on (exit status 1 when no active key has this id)."""
    with open_cli_store(store) as s:
        if not s.revoke_key(key_id):
            typer.echo(f"error: no active key with id {key_id!r}", err=True)
            raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys, name="keys")
