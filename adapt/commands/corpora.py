"""``ser-adapt corpora ...``: list and inspect the corpora under the data root."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    corpora = typer.Typer(help="List and inspect emotional speech corpora.", no_args_is_help=True)

    @corpora.command("list")
    def list_corpora(root: str = typer.Option(None, help="data root (default: $SER_ADAPT_DATA or ../shared/data)")) -> None:
        """Show every corpus under the data root with file, speaker and emotion counts read from disk."""
        from rich.console import Console
        from rich.table import Table

        from scenarios.corpora import available_corpora, data_root, load_corpus

        names = available_corpora(root)
        if not names:
            typer.echo(f"no corpora under {data_root(root)} (set $SER_ADAPT_DATA)", err=True)
            raise typer.Exit(1)
        table = Table(title=f"corpora in {data_root(root)}")
        for col in ("corpus", "language", "files", "speakers", "emotions", "hours"):
            table.add_column(col)
        for name in names:
            c = load_corpus(name, root)
            hours = sum(r.duration_s for r in c) / 3600
            table.add_row(name, ",".join(c.languages), str(len(c)), str(len(c.speakers)),
                          f"{len(c.emotions)}: {', '.join(c.emotions)}", f"{hours:.2f}")
        Console(width=160).print(table)

    app.add_typer(corpora, name="corpora")
