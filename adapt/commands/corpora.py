"""``ser-adapt corpora ...``: list the corpora under the data root, list and run download recipes."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    corpora = typer.Typer(help="List, inspect and prepare emotional speech corpora.", no_args_is_help=True)

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

    @corpora.command("recipes")
    def list_recipes() -> None:
        """Show the download recipes: corpus, language, licence, and where the archive comes from."""
        from rich.console import Console
        from rich.table import Table

        from scenarios.recipes import RECIPES

        table = Table(title="download recipes (ser-adapt corpora prepare NAME --dest DIR)")
        for col in ("name", "language", "licence", "source"):
            table.add_column(col)
        for r in RECIPES.values():
            table.add_row(r.name, r.language, r.license, r.url or f"manual: {r.homepage}")
        Console(width=200).print(table)

    @corpora.command("prepare")
    def prepare_corpus(
        name: str = typer.Argument(..., help="recipe name (see `ser-adapt corpora recipes`)"),
        dest: str = typer.Option(..., "--dest", help="data root to write into; the corpus lands in DEST/NAME"),
        url: str = typer.Option(None, help="archive URL or local path (overrides the recipe's URL)"),
        sha256: str = typer.Option(None, help="expected sha256 of the archive (required; a first run prints it)"),
        overwrite: bool = typer.Option(False, help="replace an existing DEST/NAME"),
        download_dir: str = typer.Option(None, help="where downloads are kept (default: <cache>/downloads)"),
        retries: int = typer.Option(5, help="retries after a dropped connection (each resumes)"),
    ) -> None:
        """Download, verify (sha256), extract and convert a corpus to 16 kHz FLAC + metadata.csv."""
        from scenarios.download import ChecksumError, DownloadError
        from scenarios.recipes import prepare

        try:
            folder = prepare(name, dest, url=url, sha256=sha256, overwrite=overwrite,
                             download_dir=download_dir, retries=retries, progress=True)
        except (KeyError, ValueError, ChecksumError, DownloadError, FileExistsError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(2) from None
        from scenarios.corpora import load_corpus

        corpus = load_corpus(folder)
        typer.echo(f"prepared {folder}: {len(corpus)} clips, {len(corpus.speakers)} speakers, "
                   f"emotions {', '.join(corpus.emotions)}")

    app.add_typer(corpora, name="corpora")
