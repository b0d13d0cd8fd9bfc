"""``ser-adapt keys ...``: create, list, rotate and revoke per-tenant API keys of the HTTP service.

A key may expire (``create --expires-days``); ``rotate`` prints a new key for the same tenant and
rights and keeps the old one working for a grace period (``--grace-hours``), so clients can switch
without downtime."""
from __future__ import annotations

import typer

from ._shared import cli_errors, open_cli_store, store_option

keys = typer.Typer(help="Per-tenant API keys for `ser-adapt serve` (stored hashed).", no_args_is_help=True)


@keys.command("create")
@cli_errors
def create(tenant: str = typer.Option(..., "--tenant", help="tenant name ([A-Za-z0-9_.-], up to 64)"),
           read_only: bool = typer.Option(False, "--read-only", help="key may only read and predict"),
           expires_days: float = typer.Option(None, "--expires-days", min=0.0, help="key stops working after this "
                                              "many days (default: never)"),
           store: str = store_option()) -> None:
    """Create a key and print it once; only its SHA-256 hash is stored."""
    with open_cli_store(store) as s:
        key = s.create_key(tenant, read_only=read_only,
                           expires_in_s=None if expires_days is None else expires_days * 86400)
    typer.echo(key)


def _when(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


@keys.command("list")
@cli_errors
def list_(tenant: str = typer.Option(None, "--tenant"), store: str = store_option()) -> None:
    """List key ids (never the keys): tenant, mode, state, created and expiry times (UTC)."""
    with open_cli_store(store) as s:
        for k in s.list_keys(tenant):
            state = "revoked" if k.revoked else "expired" if k.expired() else "active"
            expires = "never" if k.expires_at is None else f"expires {_when(k.expires_at)}"
            typer.echo(f"{k.key_id}\t{k.tenant}\t{'read-only' if k.read_only else 'read-write'}\t"
                       f"{state}\t{_when(k.created_at)}\t{expires}")


@keys.command("rotate")
@cli_errors
def rotate(key_id: str = typer.Argument(..., help="key id (the 12 hex digits after 'sa_')"),
           grace_hours: float = typer.Option(24.0, "--grace-hours", min=0.001,
                                             help="how long the old key keeps working"),
           expires_days: float = typer.Option(None, "--expires-days", min=0.0, help="the new key's lifetime "
                                              "(default: never expires)"),
           store: str = store_option()) -> None:
    """Print a new key for the same tenant and rights; the old key stops after the grace period."""
    with open_cli_store(store) as s:
        try:
            key = s.rotate_key(key_id, grace_s=grace_hours * 3600,
                               expires_in_s=None if expires_days is None else expires_days * 86400)
        except (KeyError, ValueError) as exc:
            typer.echo(f"error: {exc.args[0] if exc.args else exc}", err=True)
            raise typer.Exit(1)
        old = s.get_key(key_id)
    typer.echo(key)
    typer.echo(f"old key {key_id} works until {_when(old.expires_at)} UTC", err=True)


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
