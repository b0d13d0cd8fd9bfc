"""``ser-adapt enroll`` / ``predict`` and ``ser-adapt users ...``: personalization from the shell.

``predict --labels angry,sad`` scores only those emotions; ``users observe`` folds unlabelled clips
into a user's normalization statistics; ``users labels`` sets a user's label set; ``users purge``
rewrites the store so no deleted profile is left in free pages or journals.

Every command goes through ``adapt.Personalizer`` (``Personalizer.admin`` when no model is needed),
so the shell, Python and HTTP share the same rules and the same export format. Uses the embedded
default store (``--store``, ``$SER_ADAPT_STORE``, else the user data folder), the default backbone
and the shipped global head.
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

users = typer.Typer(help="List, observe, label, export, import, forget and purge user profiles.",
                    no_args_is_help=True)


@cli_errors
def enroll(user: str = typer.Option(..., "--user", help="user id"),
           label: list[str] = typer.Option(..., "--label", help="one label for all files, or one per file (repeat)"),
           files: list[Path] = typer.Argument(..., help="audio files"),
           store: str = store_option(), tenant: str = tenant_opt, backbone: str = backbone_opt,
           head: str = head_opt) -> None:
    """Add labelled clips to a user's profile (created if new)."""
    labels = list(label) * len(files) if len(label) == 1 else list(label)
    s = cli_personalizer(store, tenant, backbone, head).enroll(user, [str(f) for f in files], labels)
    typer.echo(json.dumps(s.to_dict()))


@cli_errors
def predict(user: str = typer.Option(..., "--user", help="user id (unknown users get the global model)"),
            files: list[Path] = typer.Argument(..., help="audio files"),
            labels: str = typer.Option(None, "--labels", help="comma-separated emotions to score (this call's label "
                                                              "set; default: the user's, else the tenant's)"),
            store: str = store_option(), tenant: str = tenant_opt, backbone: str = backbone_opt,
            head: str = head_opt,
            segments: bool = typer.Option(False, "--segments", help="long recordings: one row per speech segment "
                                                                    "(start, end, label, confidence; adapt.segments)"),
            fmt: str = typer.Option("jsonl", "--format", help="with --segments: jsonl or csv"),
            window: float = typer.Option(1.5, "--window", help="with --segments: longest segment in seconds"),
            hop: float = typer.Option(0.75, "--hop", help="with --segments: step between windows of long speech"),
            smoothing: int = typer.Option(1, "--smoothing", help="with --segments: average over this many segments (odd)"),
            no_vad: bool = typer.Option(False, "--no-vad", help="with --segments: no voice-activity detection")) -> None:
    """Predict the emotion of each file for a user; one JSON line per file (--segments: per segment)."""
    labelset = None if labels is None else split_list([labels])
    if segments:
        from .stream import print_segments

        return print_segments(lambda: cli_personalizer(store, tenant, backbone, head), user, files, labels=labelset, fmt=fmt,
                              window=window, hop=hop, smoothing=smoothing, vad=not no_vad)
    preds = cli_personalizer(store, tenant, backbone, head).predict_batch(user, [str(f) for f in files],
                                                                         labels=labelset)
    for f, r in zip(files, preds):
        typer.echo(json.dumps({"file": str(f), **r.to_dict()}))


@users.command("list")
@cli_errors
def list_users(tenant: str = tenant_opt, store: str = store_option(),
               limit: int = typer.Option(1000, min=1), offset: int = typer.Option(0, min=0)) -> None:
    """Enrolled users of a tenant, one per line."""
    for u in admin_personalizer(store, tenant).users(limit=limit, offset=offset):
        typer.echo(u)


@users.command("observe")
@cli_errors
def observe(user: str = typer.Argument(..., help="user id (the profile is created if new)"),
            files: list[Path] = typer.Argument(..., help="audio files of unknown emotion"),
            store: str = store_option(), tenant: str = tenant_opt, backbone: str = backbone_opt,
            head: str = head_opt) -> None:
    """Fold unlabelled clips into a user's normalization statistics; prints the summary."""
    s = cli_personalizer(store, tenant, backbone, head).observe(user, [str(f) for f in files])
    typer.echo(json.dumps(s.to_dict()))


@users.command("labels")
@cli_errors
def set_labels(user: str = typer.Argument(...),
               labels: str = typer.Argument(None, help="comma-separated emotions to score for this user"),
               clear: bool = typer.Option(False, "--clear", help="drop the user's label set (the tenant's default)"),
               tenant: str = tenant_opt, store: str = store_option(), head: str = head_opt) -> None:
    """Set the emotions scored for a user (`a,b,c`), or `--clear` them; prints the summary."""
    labelset = labels_or_clear(labels, clear)
    s = admin_personalizer(store, tenant, head).set_labels(user, labelset)
    typer.echo(json.dumps(s.to_dict()))


@users.command("forget")
@cli_errors
def forget(user: str = typer.Argument(...), tenant: str = tenant_opt, store: str = store_option()) -> None:
    """Delete every trace of a user (exit status 1 when there was none)."""
    from ..errors import UnknownUserError

    try:
        admin_personalizer(store, tenant).forget(user)
    except UnknownUserError:
        typer.echo(f"error: no profile for user {user!r} in tenant {tenant!r}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"forgot {user}")


@users.command("purge")
@cli_errors
def purge(store: str = store_option()) -> None:
    """Rewrite the whole store so nothing of forgotten users is left in free pages or journals
    (SQLite: VACUUM + empty WAL; PostgreSQL: VACUUM FULL + CHECKPOINT). Locks writers out while it runs."""
    from ._shared import open_cli_store

    with open_cli_store(store) as s:
        typer.echo(json.dumps(s.purge()))


@users.command("export")
@cli_errors
def export(user: str = typer.Argument(...), out: Path = typer.Option(None, "--out", help="file (default stdout)"),
           tenant: str = tenant_opt, store: str = store_option(), head: str = head_opt) -> None:
    """Write a user's profile as JSON (the format of ``Personalizer.export_user``)."""
    text = json.dumps(admin_personalizer(store, tenant, head).export_user(user))
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text)


@users.command("import")
@cli_errors
def import_(file: Path = typer.Argument(..., exists=True, dir_okay=False), user: str = typer.Option(None, "--user"),
            overwrite: bool = typer.Option(False, "--overwrite"), tenant: str = tenant_opt,
            store: str = store_option(), head: str = head_opt) -> None:
    """Restore a profile written by `users export` (checked against the global head)."""
    data = read_json_export(file)
    summary = admin_personalizer(store, tenant, head).import_user(data, user=user, overwrite=overwrite)
    typer.echo(json.dumps(summary.to_dict()))


def register(app: typer.Typer) -> None:
    app.command("enroll")(enroll)
    app.command("predict")(predict)
    app.add_typer(users, name="users")
