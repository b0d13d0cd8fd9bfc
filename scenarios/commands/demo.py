"""``ser-adapt demo``: the main job end to end on the embedded defaults, offline, on a corpus the head never saw.

A whole corpus is held out: a global head is fitted on the *other* shared corpora only (so the
held-out corpus is a new deployment: new language or accent, new microphones, new people). One of
its speakers is then a new user through the ``Personalizer`` (offline Whisper backbone, SQLite
store in a temp folder), with predictions restricted to the corpus's emotions (a label set): the
speaker's test clips (another sentence where the corpus has fixed sentences) are predicted
unenrolled, after ``observe`` of a few of the speaker's clips *without labels*, and after
``enroll`` of K labelled clips per emotion. Prints UA (unweighted average recall) first, then WA
and a confusion table.
"""
from __future__ import annotations

import typer


def run_demo(corpus: str = "ravdess", speaker: str | None = None, shots: int = 2, seed: int = 0,
             unlabelled: int = 10, progress: bool = True) -> dict:
    """Run the demo and return its numbers (``ua_before``, ``ua_observed``, ``ua_after``, ...)."""
    import tempfile
    import time

    import numpy as np

    from adapt import get_backbone
    from adapt.metrics import confusion, unweighted_average_recall, weighted_accuracy
    from adapt.personal import GlobalHead, Personalizer

    from ..corpora import SHARED_CORPORA, load_corpus
    from ..splits import personalization_split
    from ..tables import FeatureTable

    c = load_corpus(corpus)
    target = speaker or c.speakers[-1]
    if target not in c.speakers:
        raise typer.BadParameter(f"unknown speaker {target!r}; {corpus} has {list(c.speakers)}")
    others_c = [name for name in SHARED_CORPORA if name != corpus]
    backbone = get_backbone()
    t0 = time.perf_counter()
    train = FeatureTable.from_corpora(others_c, backbone, progress=progress)
    from ..tables import corpus_features

    fs = corpus_features(c, backbone, progress=progress)
    t_embed = time.perf_counter() - t0
    head = GlobalHead.fit(train.X, train.y, speakers=train.speakers, corpora=train.corpora,
                          info={"demo": f"trained on {', '.join(others_c)}; {corpus} held out"})
    mine = np.flatnonzero(fs.speakers == target)
    enroll_rel, test_rel = personalization_split(fs.speakers[mine], fs.y[mine], target, shots=shots,
                                                 text_ids=fs.text_ids[mine], shortfall="cap", seed=seed)
    enroll, test = mine[enroll_rel], mine[test_rel]
    pool = np.random.default_rng(seed).permutation(mine[~np.isin(mine, test)])[:unlabelled]
    labels = sorted(set(fs.y[mine].tolist()))
    usable = [lab for lab in labels if lab in head.classes]
    paths = fs.paths
    with tempfile.TemporaryDirectory() as tmp:
        p = Personalizer(backbone, head, f"{tmp}/profiles.db")
        test_paths = [paths[i] for i in test]
        before = [r.label for r in p.predict_batch("demo-user", test_paths, labels=usable)]
        p.observe("demo-user", [paths[i] for i in pool])
        observed = [r.label for r in p.predict_batch("demo-user", test_paths, labels=usable)]
        t1 = time.perf_counter()
        known = np.isin(fs.y[enroll], head.classes)
        p.enroll("demo-user", [paths[i] for i in enroll[known]], fs.y[enroll[known]].tolist())
        for lab in sorted(set(fs.y[enroll[~known]].tolist())):   # an emotion the head never saw
            p.add_emotion("demo-user", lab, [paths[i] for i in enroll if fs.y[i] == lab])
        t_enroll = time.perf_counter() - t1
        after = [r.label for r in p.predict_batch("demo-user", test_paths, labels=labels)]
    y = fs.y[test]
    return {
        "corpus": corpus, "speaker": target, "trained_on": others_c, "shots": shots,
        "enroll_clips": int(len(enroll)), "observed_clips": int(len(pool)), "test_clips": int(len(test)),
        "labels": labels, "enroll_texts": sorted({str(t) for t in fs.text_ids[enroll]}),
        "test_texts": sorted({str(t) for t in fs.text_ids[test]}),
        "ua_before": unweighted_average_recall(y, before), "ua_observed": unweighted_average_recall(y, observed),
        "ua_after": unweighted_average_recall(y, after),
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
        con.print(f"[bold]{r['corpus']}[/] held out: global head fitted on {', '.join(r['trained_on'])} only. "
                  f"Speaker [bold]{r['speaker']}[/]: observed {r['observed_clips']} clips without labels, then "
                  f"enrolled {r['enroll_clips']} clips (≤{r['shots']}/emotion, texts {r['enroll_texts']}); tested on "
                  f"{r['test_clips']} other clips (texts {r['test_texts']}).")
        con.print(f"UA  unenrolled {r['ua_before']:.3f}  ->  observed {r['ua_observed']:.3f}  ->  enrolled "
                  f"{r['ua_after']:.3f}   (WA {r['wa_before']:.3f} -> {r['wa_after']:.3f}); enrollment took "
                  f"{r['enroll_s']:.2f} s")
        t = Table(title="confusion after enrollment (rows: true, columns: predicted)")
        t.add_column("")
        for lab in r["labels"]:
            t.add_column(lab[:7], justify="right")
        for lab, row in zip(r["labels"], r["confusion_after"]):
            t.add_row(lab, *[str(v) for v in row])
        con.print(t)
