"""Explanations: are the relevance curves faithful? Deletion / insertion against random (issue #15).

Writes ``benchmarks/results/explain.md`` (``--publish`` also rebuilds BENCHMARKS.md).

    .venv/bin/python -m benchmarks.explain                       # six corpora, 20 clips each (~20 min, 2 cores)
    .venv/bin/python -m benchmarks.explain --clips 4 --corpora emodb --no-write     # a smoke run
    .venv/bin/python -m benchmarks.explain --write-cue-model adapt/assets/egemaps_cues.npz

Protocol. In every corpus a seeded quarter of the speakers (at least two) is held out; a global
head (``GlobalHead.fit``, the shipped recipe: 256 dims, LDA shrinkage 0.3, corpus-balanced means) is
trained on every clip of the other speakers of all six corpora, and a seeded sample of ``--clips``
clips of the held-out speakers is explained through the public ``Personalizer`` API as a user never
seen (``adapt.explain.for_user``). For each clip and its predicted class: integrated gradients on
the log-mel (``--steps`` points), occlusion (zeros), and ``--seeds`` random rankings, all on the same
``--window`` grid; deletion (silence the most relevant windows first) and insertion (restore them
first, from silence) curves at 11 fractions; AUC = trapezoid over the fraction of windows. Lower
deletion AUC and higher insertion AUC are better. Target (issue #15): IG deletion AUC <= 0.8x
random on every corpus.

The eGeMAPS cue model (``adapt.explain.cues``) is trained on up to ``--cue-clips`` clips per corpus
of the training speakers and scored on the held-out speakers (UA), with the permutation importance
of its features on them (``sklearn.inspection``).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from ._common import SHARED_CORPORA, bench_cache, provenance
from .render import RESULTS, publish

SEED = 0


def held_out_speakers(table, corpus: str, seed: int = SEED) -> list[str]:
    spk = sorted(set(np.asarray(table.speakers)[np.asarray(table.corpora) == corpus].tolist()))
    rng = np.random.default_rng([seed, len(spk)])
    return sorted(rng.choice(spk, size=max(2, len(spk) // 4), replace=False).tolist())


def sample_clips(table, speakers: list[str], n: int, seed: int = SEED) -> np.ndarray:
    rows = np.flatnonzero(np.isin(np.asarray(table.speakers), speakers))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))


def explain_one(model, wave, *, steps: int, window: float, seeds: int) -> dict:
    from adapt.explain.attribution import integrated_gradients, occlusion
    from adapt.explain.faithfulness import perturbation_curves, random_relevance

    t0 = time.perf_counter()
    ig = integrated_gradients(model, wave, n_steps=steps, window_s=window)
    t_ig = time.perf_counter() - t0
    t0 = time.perf_counter()
    occ = occlusion(model, wave, window_s=window, target=ig.target_index)
    t_occ = time.perf_counter() - t0
    # a variant tried for the target: IG of log p (no saturation near p = 1), same grid and target
    model.output = "logprob"
    try:
        ig_log = replace(integrated_gradients(model, wave, n_steps=steps, window_s=window, target=ig.target_index),
                         method="iglogp")
    finally:
        model.output = "prob"
    rels = [ig, occ, ig_log] + [random_relevance(ig, seed=s) for s in range(seeds)]
    curves = perturbation_curves(model, wave, rels)
    out = {"target": ig.target, "p": ig.probability, "delta": ig.delta, "windows": len(ig.values),
           "t_ig": t_ig, "t_occ": t_occ}
    for c in curves:
        key = c.method.split(":")[0]
        out.setdefault(f"{c.kind}_{key}", []).append(c.auc)
        out.setdefault(f"curve_{c.kind}_{key}", []).append(c.probs.tolist())
    return out


def run_corpus(p, table, corpus: str, args) -> list[dict]:
    from adapt.explain.model import for_user

    cache = bench_cache("explain") / f"{corpus}-{args.clips}-{args.steps}-{args.window}-{args.seeds}.json"
    if cache.is_file() and not args.fresh:
        return json.loads(cache.read_text())
    speakers = held_out_speakers(table, corpus)
    rows = []
    for i in sample_clips(table, speakers, args.clips):
        model, wave, pred = for_user(p, None, str(table.paths[i]))
        r = explain_one(model, wave, steps=args.steps, window=args.window, seeds=args.seeds)
        r.update(clip=str(table.clip_ids[i]), label=str(table.y[i]), duration=wave.duration_s)
        rows.append(r)
        print(f"  {corpus} {len(rows)}/{args.clips} {r['clip']}: del IG {r['deletion_ig'][0]:.3f} occ "
              f"{r['deletion_occlusion'][0]:.3f} rand {np.mean(r['deletion_random']):.3f} "
              f"({r['t_ig']:.1f}+{r['t_occ']:.1f} s)", flush=True)
    cache.write_text(json.dumps(rows))
    return rows


def cue_section(table, corpora, args) -> tuple[str, object]:
    """Fit the eGeMAPS cue model on training speakers; UA and permutation importance on held-out ones."""
    import opensmile
    from sklearn.metrics import balanced_accuracy_score

    import adapt
    from adapt.explain.cues import CueModel, permutation_cues

    rng = np.random.default_rng(SEED)
    train_rows, test_rows = [], []
    for c in corpora:
        held = held_out_speakers(table, c)
        in_c = np.asarray(table.corpora) == c
        test = np.flatnonzero(in_c & np.isin(np.asarray(table.speakers), held))
        train = np.flatnonzero(in_c & ~np.isin(np.asarray(table.speakers), held))
        train_rows.append(rng.choice(train, size=min(args.cue_clips, len(train)), replace=False))
        test_rows.append(rng.choice(test, size=min(args.cue_clips // 2, len(test)), replace=False))
    tr, te = np.concatenate(train_rows), np.concatenate(test_rows)
    bb = adapt.get_backbone("egemaps")
    X = adapt.embed(bb, [str(table.paths[i]) for i in np.concatenate([tr, te])])
    Xtr, Xte = X[:len(tr)], X[len(tr):]
    ytr, yte = np.asarray(table.y)[tr], np.asarray(table.y)[te]
    names = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02).feature_names
    model = CueModel.fit(Xtr, ytr, feature_names=names,
                         info={"trained_on": "benchmarks.explain training speakers", "clips": int(len(tr)),
                               "corpora": list(corpora), "per_corpus_cap": args.cue_clips})
    ua = balanced_accuracy_score(yte, model.predict(Xte))
    imp = permutation_cues(model, Xte, yte, n_repeats=5, k=10)
    lines = [f"eGeMAPS cue model (88 functionals, standardization + balanced logistic regression, C = 0.1): trained on "
             f"{len(tr)} clips of the training speakers (at most {args.cue_clips} per corpus), UA {ua:.3f} on "
             f"{len(te)} clips of the held-out speakers ({len(model.classes)} classes; chance "
             f"{1 / len(model.classes):.3f}). The ten features whose shuffling costs most UA on the held-out clips "
             f"(permutation importance, 5 repeats):", "",
             "| feature | family | UA drop (mean ± sd) |", "|---|---|---|"]
    lines += [f"| `{n}` | {fam} | {m:.3f} ± {s:.3f} |" for n, fam, m, s in imp]
    return "\n".join(lines), model


def layer_section(p, table, corpora, n: int) -> str:
    """Mean layer ablation (drop in log p of the predicted class) over a few clips per corpus."""
    from adapt.explain.attribution import layer_relevance
    from adapt.explain.model import for_user

    lines = ["| corpus | clips | " + " | ".join(f"L{i}" for i in range(5)) + " |", "|---|---|" + "---|" * 5]
    for c in corpora:
        abl = []
        for i in sample_clips(table, held_out_speakers(table, c), n, seed=SEED + 1):
            model, wave, _ = for_user(p, None, str(table.paths[i]))
            abl.append(layer_relevance(model, wave, n_steps=8).ablation)
        m = np.mean(abl, axis=0)
        lines.append(f"| {c} | {len(abl)} | " + " | ".join(f"{v:+.3f}" for v in m) + " |")
    return "\n".join(lines)


def render(results: dict, args, cue_text: str, layer_text: str, elapsed: float) -> str:
    head = ("| corpus | clips | mean s | deletion IG | deletion occlusion | deletion random | IG / random | "
            "occlusion / random | target IG <= 0.8x | insertion IG | insertion occlusion | insertion random | "
            "IG delta (median) | deletion IG of log p / random |")
    lines = ["## Explanations: faithfulness of relevance over time (issue #15)", "", provenance(), "",
             __doc__.split("Protocol. ", 1)[1].split("\n\nThe eGeMAPS")[0].replace("\n", " "), "",
             f"Settings: {args.clips} clips per corpus, IG {args.steps} steps, windows of {args.window * 1000:.0f} ms, "
             f"{args.seeds} random seeds, seed {SEED}; mean AUC over clips [95 % bootstrap interval over clips]. "
             f"Whole run {elapsed / 60:.1f} min.", "", head, "|" + "---|" * 14]

    def ci(a):
        a = np.asarray(a)
        rng = np.random.default_rng(0)
        boots = [rng.choice(a, size=len(a)).mean() for _ in range(1000)]
        return f"{a.mean():.3f} [{np.percentile(boots, 2.5):.2f}, {np.percentile(boots, 97.5):.2f}]"

    summary = {}
    for c, rows in results.items():
        g = lambda k: np.array([np.mean(r[k]) for r in rows])  # noqa: E731
        d_ig, d_occ, d_rand = g("deletion_ig"), g("deletion_occlusion"), g("deletion_random")
        ratio_ig, ratio_occ = d_ig.mean() / d_rand.mean(), d_occ.mean() / d_rand.mean()
        summary[c] = ratio_ig
        lines.append(f"| {c} | {len(rows)} | {np.mean([r['duration'] for r in rows]):.1f} | {ci(d_ig)} | {ci(d_occ)} | "
                     f"{ci(d_rand)} | {ratio_ig:.2f} | {ratio_occ:.2f} | {'met' if ratio_ig <= 0.8 else 'missed'} | "
                     f"{ci(g('insertion_ig'))} | {ci(g('insertion_occlusion'))} | {ci(g('insertion_random'))} | "
                     f"{np.median([r['delta'] for r in rows]):.3f} | {g('deletion_iglogp').mean() / d_rand.mean():.2f} |")
    met = [c for c, v in summary.items() if v <= 0.8]
    lines += ["", f"Target IG deletion AUC <= 0.8x random: met on {len(met)} of {len(summary)} corpora"
              + (f" (missed: {', '.join(c for c in summary if c not in met)})." if len(met) < len(summary) else "."),
              "", "### Which encoder layers the head relies on", "",
              "Mean drop in the log-probability of the predicted class when one layer's pooled block is replaced by the user's "
              "centre (`adapt.explain.layer_relevance`, `captum.attr.FeatureAblation`; L0 = conv front end + "
              "positions, L4 = last block after the final layer norm), same held-out speakers:", "", layer_text]
    if cue_text:
        lines += ["", "### Named cues: the interpretable eGeMAPS pipeline", "", cue_text]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default=",".join(SHARED_CORPORA))
    ap.add_argument("--clips", type=int, default=20, help="clips per corpus (held-out speakers)")
    ap.add_argument("--steps", type=int, default=16, help="integrated-gradients steps")
    ap.add_argument("--window", type=float, default=0.2, help="relevance window (s)")
    ap.add_argument("--seeds", type=int, default=3, help="random rankings per clip")
    ap.add_argument("--layer-clips", type=int, default=5, help="clips per corpus for the layer table")
    ap.add_argument("--cue-clips", type=int, default=120, help="eGeMAPS training clips per corpus (0: skip)")
    ap.add_argument("--write-cue-model", default="", help="save the cue model here (e.g. adapt/assets/egemaps_cues.npz)")
    ap.add_argument("--fresh", action="store_true", help="ignore cached per-corpus runs")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--publish", action="store_true", help="also rebuild BENCHMARKS.md")
    args = ap.parse_args()
    import torch

    from adapt import Personalizer, get_backbone
    from adapt.personal import GlobalHead
    from scenarios.tables import FeatureTable

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    corpora = [c for c in args.corpora.split(",") if c]
    table = FeatureTable.from_corpora(list(SHARED_CORPORA))
    held = np.zeros(len(table.y), bool)
    for c in SHARED_CORPORA:
        held |= np.isin(np.asarray(table.speakers), held_out_speakers(table, c))
    train = table.subset(~held)
    head = GlobalHead.fit(train.X, train.y, speakers=np.asarray(train.speakers), corpora=np.asarray(train.corpora),
                          info={"backbone": table.backbone, "benchmark": "explain", "held_out_speakers": int(
                              len(set(np.asarray(table.speakers)[held].tolist())))})
    p = Personalizer(get_backbone(), head, ":memory:")
    results = {}
    for c in corpora:
        results[c] = run_corpus(p, table, c, args)
        print(f"{c}: done at {time.perf_counter() - t0:.0f} s", flush=True)
    layer_text = layer_section(p, table, corpora, args.layer_clips)
    cue_text = ""
    if args.cue_clips > 0:
        cue_text, cue_model = cue_section(table, corpora, args)
        if args.write_cue_model:
            cue_model.save(args.write_cue_model)
            print(f"wrote {args.write_cue_model}")
    text = render(results, args, cue_text, layer_text, time.perf_counter() - t0)
    print(text)
    if args.publish:
        publish("explain", text)
    elif not args.no_write:
        (RESULTS / "explain.md").write_text(text)


if __name__ == "__main__":
    main()
