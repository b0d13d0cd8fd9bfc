"""``ser-adapt tenant ...``: the tenant (deployment) layer between the global head and its users.

``enroll`` adapts it from labelled clips of several of the deployment's speakers; ``show``,
``export``, ``import``, ``labels`` (the tenant's default label set) and ``forget`` administer it.
Every command goes through ``adapt.Personalizer`` (``Personalizer.admin`` when no audio is
embedded), so the shell, Python and HTTP (``/v1/tenant``) share rules and export format. Errors
follow ``_shared.cli_errors``: ``error: <Type>: <message>`` and exit status 2 (``show`` / ``export``
of a tenant without a tenant profile included); ``forget`` with nothing to delete exits 1.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ._shared import (admin_personalizer, cli_errors, cli_personalizer, labels_or_clear, read_json_export, split_list,
                      store_option)

tenant_opt = typer.Option("default", "--tenant", help="tenant namespace in the store")
backbone_opt = typer.Option(None, "--backbone", help="backbone name (default: the offline default)")
head_opt = typer.Option(None, "--head", help="global head file, .npz or .json (default: the shipped one)")

tenant = typer.Typer(help="The tenant layer: enroll a deployment's speakers, show, export, import, label, forget.",
                     no_args_is_help=True)


def _per_file(values: list[str], n: int) -> list[str]:
    """One value for all files, or one per file (``Personalizer`` refuses any other count)."""
    return values * n if len(values) == 1 else values


@tenant.command("enroll")
@cli_errors
def enroll(files: list[Path] = typer.Argument(..., help="audio files"),
           labels: list[str] = typer.Option(..., "--labels", help="emotion per file, comma-separated (or repeat "
                                                                  "the option); one label for all files"),
           speakers: list[str] = typer.Option(None, "--speakers", help="speaker id per file, comma-separated (or "
                                                                       "repeat); default: one speaker"),
           new_emotions: list[str] = typer.Option(None, "--new-emotions", help="emotions the global model lacks "
                                                                               "that this enrollment creates, "
                                                                               "comma-separated"),
           store: str = store_option(), tenant_: str = tenant_opt, backbone: str = backbone_opt,
           head: str = head_opt) -> None:
    """Adapt the tenant layer from labelled clips of several speakers; prints the tenant summary."""
    paths = [str(f) for f in files]
    labs = _per_file(split_list(labels), len(paths))
    spk = _per_file(split_list(speakers), len(paths)) if speakers else None
    s = cli_personalizer(store, tenant_, backbone, head).enroll_tenant(
        paths, labs, speakers=spk, new_emotions=split_list(new_emotions) if new_emotions else ())
    typer.echo(json.dumps(s.to_dict()))


@tenant.command("show")
@cli_errors
def show(tenant_: str = tenant_opt, store: str = store_option(), head: str = head_opt) -> None:
    """The tenant profile's summary as JSON (counts per emotion, speakers, label set, revision)."""
    typer.echo(json.dumps(admin_personalizer(store, tenant_, head).tenant_summary().to_dict()))


@tenant.command("export")
@cli_errors
def export(out: Path = typer.Option(None, "--out", help="file (default stdout)"), tenant_: str = tenant_opt,
           store: str = store_option(), head: str = head_opt) -> None:
    """Write the tenant profile as JSON (the format of ``Personalizer.export_tenant``)."""
    text = json.dumps(admin_personalizer(store, tenant_, head).export_tenant())
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text)


@tenant.command("import")
@cli_errors
def import_(file: Path = typer.Argument(..., exists=True, dir_okay=False),
            overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing tenant profile"),
            tenant_: str = tenant_opt, store: str = store_option(), head: str = head_opt) -> None:
    """Restore a profile written by `tenant export` into --tenant (checked against the global head)."""
    data = read_json_export(file)
    typer.echo(json.dumps(admin_personalizer(store, tenant_, head).import_tenant(data, overwrite=overwrite).to_dict()))


@tenant.command("labels")
@cli_errors
def set_labels(labels: str = typer.Argument(None, help="comma-separated emotions: the tenant's default label set"),
               clear: bool = typer.Option(False, "--clear", help="drop the tenant's label set (every emotion)"),
               tenant_: str = tenant_opt, store: str = store_option(), head: str = head_opt) -> None:
    """Set the tenant's default label set (`a,b,c`), or `--clear` it; prints the tenant summary."""
    labelset = labels_or_clear(labels, clear)
    typer.echo(json.dumps(admin_personalizer(store, tenant_, head).set_tenant_labels(labelset).to_dict()))


@tenant.command("forget")
@cli_errors
def forget(users: bool = typer.Option(False, "--users", help="also delete every user profile of the tenant"),
           tenant_: str = tenant_opt, store: str = store_option(), head: str = head_opt) -> None:
    """Delete the tenant profile (with --users every user profile too; exit status 1 when nothing was there)."""
    p = admin_personalizer(store, tenant_, head)
    n_users = p.store.count_users(p.config.tenant) if users else 0
    if not p.forget_tenant(users=users, missing_ok=True):
        typer.echo(f"error: nothing to forget in tenant {tenant_!r}"
                   + ("" if users else " (no tenant profile; --users also deletes its users)"), err=True)
        raise typer.Exit(1)
    typer.echo(f"forgot tenant {tenant_}" + (f" and {n_users} user(s)" if users else ""))


def register(app: typer.Typer) -> None:
    app.add_typer(tenant, name="tenant")
