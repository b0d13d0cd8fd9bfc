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
        broken = 0
        for name in names:
            try:
                c = load_corpus(name, root)
            except (ValueError, OSError) as err:  # one malformed metadata.csv must not hide the others
                table.add_row(name, "", "", "", f"[red]error: {err}[/red]", "")
                broken += 1
                continue
            hours = sum(r.duration_s for r in c) / 3600
            table.add_row(name, ",".join(c.languages), str(len(c)), str(len(c.speakers)),
                          f"{len(c.emotions)}: {', '.join(c.emotions)}", f"{hours:.2f}")
        Console(width=160).print(table)
        if broken:
            raise typer.Exit(1)

    @corpora.command("show")
    def show_corpus(
        name: str = typer.Argument(..., help="corpus name under the data root, or a corpus folder"),
        root: str = typer.Option(None, help="data root (default: $SER_ADAPT_DATA or ../shared/data)"),
    ) -> None:
        """Clips per emotion and per speaker, genders, sentences (text ids) and duration of one corpus."""
        from collections import Counter

        from rich.console import Console
        from rich.table import Table

        from scenarios.corpora import load_corpus

        try:
            c = load_corpus(name, root)
        except (ValueError, OSError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        console = Console(width=160)
        durations = [r.duration_s for r in c]
        texts = {r.text_id for r in c if r.text_id is not None}
        console.print(f"[bold]{c.name}[/bold] ({c.root}): {len(c)} clips, {len(c.speakers)} speakers, "
                      f"languages {', '.join(c.languages)}, {sum(durations) / 3600:.2f} h, clip length "
                      f"{min(durations):.2f}-{max(durations):.2f} s, "
                      f"{len(texts) if texts else 'no'} fixed sentences (text ids)")
        emotions = c.emotions
        table = Table(title="clips per speaker and emotion")
        for col in ("speaker", "gender", *emotions, "total"):
            table.add_column(col, justify="left" if col in ("speaker", "gender") else "right")
        for spk in c.speakers:
            recs = [r for r in c if r.speaker == spk]
            per = Counter(r.emotion for r in recs)
            genders = ",".join(sorted({r.gender for r in recs}))
            table.add_row(spk, genders, *(str(per.get(e, 0)) for e in emotions), str(len(recs)))
        totals = c.counts()
        table.add_row("all", "", *(str(totals.get(e, 0)) for e in emotions), str(len(c)))
        console.print(table)

    @corpora.command("recipes")
    def list_recipes() -> None:
        """Show the download recipes: corpus, language, licence, and where the archive comes from."""
        from rich.console import Console
        from rich.table import Table

        from scenarios.corpora import SOURCES

        table = Table(title="download recipes (ser-adapt corpora prepare NAME --dest DIR)")
        for col in ("name", "language", "licence", "source"):
            table.add_column(col)
        for r in SOURCES.values():
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
        from adapt.errors import ChecksumError, DownloadError
        from scenarios.corpora import prepare

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
