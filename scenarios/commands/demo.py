"""``ser-adapt demo``: the main job end to end on the embedded defaults, offline.

A speaker of a shared corpus is held out; a global head is fitted on every *other* speaker (so the
numbers are speaker-independent), the held-out speaker enrolls K clips per emotion through the
``Personalizer`` (offline Whisper backbone, SQLite store in a temp folder), and the speaker's other
clips (another sentence where the corpus has fixed sentences) are predicted before and after
enrollment. Prints UA (unweighted average recall) first, then WA and a confusion table.
"""
from __future__ import annotations

import typer


def run_demo(corpus: str = "ravdess", speaker: str | None = None, shots: int = 2, seed: int = 0,
             progress: bool = True) -> dict:
    """Run the demo and return its numbers (``ua_before``, ``ua_after``, ...)."""
    import tempfile
    import time

    import numpy as np

    from adapt import get_backbone
    from adapt.metrics import confusion, unweighted_average_recall, weighted_accuracy
    from adapt.personal import GlobalHead, Personalizer

    from ..corpora import load_corpus
    from ..splits import personalization_split
    from ..tables import corpus_features

    c = load_corpus(corpus)
    target = speaker or c.speakers[-1]
    if target not in c.speakers:
        raise typer.BadParameter(f"unknown speaker {target!r}; {corpus} has {list(c.speakers)}")
    backbone = get_backbone()
    t0 = time.perf_counter()
    fs = corpus_features(c, backbone, progress=progress)
    t_embed = time.perf_counter() - t0
    others = fs.speakers != target
    head = GlobalHead.fit(fs.X[others], fs.y[others], speakers=fs.speakers[others], linear=True, C=0.1,
                          dim=256, info={"demo": f"{corpus} without {target}"})
    mine = np.flatnonzero(~others)
    enroll_rel, test_rel = personalization_split(fs.speakers[mine], fs.y[mine], target, shots=shots,
                                                 text_ids=fs.text_ids[mine], shortfall="cap", seed=seed)
    enroll, test = mine[enroll_rel], mine[test_rel]
    paths = fs.paths
    with tempfile.TemporaryDirectory() as tmp:
        p = Personalizer(backbone, head, f"{tmp}/profiles.db")
        before = [r.label for r in p.predict_batch("demo-user", [paths[i] for i in test])]
        t1 = time.perf_counter()
        p.enroll("demo-user", [paths[i] for i in enroll], fs.y[enroll].tolist())
        t_enroll = time.perf_counter() - t1
        after = [r.label for r in p.predict_batch("demo-user", [paths[i] for i in test])]
    y = fs.y[test]
    labels = sorted(set(y.tolist()))
    return {
        "corpus": corpus, "speaker": target, "shots": shots, "enroll_clips": int(len(enroll)),
        "test_clips": int(len(test)), "labels": labels,
        "enroll_texts": sorted({str(t) for t in fs.text_ids[enroll]}),
        "test_texts": sorted({str(t) for t in fs.text_ids[test]}),
        "ua_before": unweighted_average_recall(y, before), "ua_after": unweighted_average_recall(y, after),
        "wa_before": weighted_accuracy(y, before), "wa_after": weighted_accuracy(y, after),
        "confusion_after": confusion(y, after, labels=labels).tolist(),
        "embed_s": t_embed, "enroll_s": t_enroll,
    }


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(corpus: str = typer.Option("ravdess", help="shared corpus to take the speaker from"),
             speaker: str = typer.Option(None, help="held-out speaker (default: the corpus's last)"),
             shots: int = typer.Option(2, min=1, help="enrollment clips per emotion"),
             seed: int = typer.Option(0), json_out: bool = typer.Option(False, "--json", help="print JSON only")) -> None:
        """Enroll a held-out speaker with a few clips per emotion; show UA before and after (offline)."""
        import json

        from rich.console import Console
        from rich.table import Table

        r = run_demo(corpus, speaker, shots, seed, progress=not json_out)
        if json_out:
            typer.echo(json.dumps(r))
            return
        con = Console(width=120)
        con.print(f"[bold]{r['corpus']}[/], held-out speaker [bold]{r['speaker']}[/]: global head fitted on the "
                  f"other speakers; enrolled {r['enroll_clips']} clips (≤{r['shots']}/emotion, texts "
                  f"{r['enroll_texts']}), tested on {r['test_clips']} other clips (texts {r['test_texts']}).")
        con.print(f"UA  before {r['ua_before']:.3f}  ->  after {r['ua_after']:.3f}   "
                  f"(WA {r['wa_before']:.3f} -> {r['wa_after']:.3f}); enrollment took {r['enroll_s']:.2f} s")
        t = Table(title="confusion after enrollment (rows: true, columns: predicted)")
        t.add_column("")
        for lab in r["labels"]:
            t.add_column(lab[:7], justify="right")
        for lab, row in zip(r["labels"], r["confusion_after"]):
            t.add_row(lab, *[str(v) for v in row])
        con.print(t)
