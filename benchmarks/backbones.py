"""Speaker-independent linear-probe UA of every offline backbone, and the default layer choice.

Protocol: 5-fold cross-validation split by speaker (``scenarios.splits.speaker_kfold``, seed 0);
standardise + multinomial logistic regression (C=1) fit on the training speakers; UA on the test
speakers, averaged over folds. The default layer combination is chosen by *nested* CV on RAVDESS and
EmoDB: inside each outer training fold an inner 4-fold speaker CV scores each candidate, and only
the candidate picked there is evaluated on the outer test speakers.

    .venv/bin/python -m benchmarks.backbones            # writes benchmarks/results/backbones.md
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from adapt.errors import BackboneNotAvailableError  # noqa: E402
from adapt.metrics import unweighted_average_recall  # noqa: E402
from adapt.embedding.pooling import combine_layers  # noqa: E402
from scenarios.tables import corpus_features, corpus_layer_features  # noqa: E402
from scenarios.splits import speaker_kfold  # noqa: E402

from ._common import DEV_CORPORA, provenance  # noqa: E402
from .render import publish  # noqa: E402
EGEMAPS_REF = {"ravdess": 0.52, "emodb": 0.62, "emovo": 0.30, "urdu": 0.63}


def probe_ua(X: np.ndarray, y: np.ndarray, speakers: np.ndarray, folds) -> float:
    scores = []
    for train, test in folds:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        model.fit(X[train], y[train])
        scores.append(unweighted_average_recall(y[test], model.predict(X[test])))
    return float(np.mean(scores))


def candidates(num_layers: int) -> dict[str, object]:
    out: dict[str, object] = {f"L{i}": i for i in range(num_layers)}
    out["mean of layers"] = "mean"
    out["all layers concatenated"] = "all"
    return out


def layer_choice(corpora=("ravdess", "emodb")) -> tuple[list[str], list[str]]:
    """Nested speaker CV: pick a layer combination on inner folds of each outer training fold."""
    rows, picks = [], []
    for name in corpora:
        fs = corpus_features(name, layers="all")
        per_layer = corpus_layer_features(name)
        cands = candidates(per_layer.shape[1])
        for k, (train, test) in enumerate(speaker_kfold(fs.speakers, 5, seed=0)):
            inner = [(train[a], train[b]) for a, b in speaker_kfold(fs.speakers[train], 4, seed=0)]
            inner_scores = {c: probe_ua(combine_layers(per_layer, sel), fs.y, fs.speakers, inner) for c, sel in cands.items()}
            best = max(inner_scores, key=inner_scores.get)
            outer = probe_ua(combine_layers(per_layer, cands[best]), fs.y, fs.speakers, [(train, test)])
            picks.append(best)
            rows.append(f"| {name} | {k} | " + " | ".join(f"{inner_scores[c]:.3f}" for c in cands)
                        + f" | {best} | {outer:.3f} |")
            print(rows[-1], flush=True)
    header = ("| corpus | outer fold | " + " | ".join(candidates(5)) + " | picked | outer-test UA of pick |\n"
              + "|---" * (len(candidates(5)) + 4) + "|")
    return [header, *rows], picks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", nargs="+", default=list(DEV_CORPORA))
    ap.add_argument("--extra-backbones", nargs="*", default=["logmel", "mfcc", "whisper-base"])
    ap.add_argument("--skip-layer-choice", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    threadpool_limits(1)  # BLAS threads oversubscribe the 2 shared cores badly (40x slower here)
    t0 = time.time()
    lines = ["## Backbones: speaker-independent linear-probe UA", ""]
    lines += ["Protocol: 5-fold CV split by speaker (speaker_kfold, seed 0), StandardScaler + logistic regression "
              "(C=1) on the training speakers, UA on the held-out speakers, mean over folds. Mean pooling over "
              "time unless noted. Whisper layer 0 = conv front end + positional embeddings; last layer after "
              "the final layer norm.", ""]
    # per-layer table for the default backbone
    from adapt.backbones import get_backbone

    default = get_backbone()
    cands = candidates(default.spec.num_layers)
    results: dict[str, dict[str, float]] = {}
    for name in args.corpora:
        fs = corpus_features(name)
        per_layer = corpus_layer_features(name)
        folds = speaker_kfold(fs.speakers, 5, seed=0)
        res = {c: probe_ua(combine_layers(per_layer, sel), fs.y, fs.speakers, folds) for c, sel in cands.items()}
        eg = corpus_features(name, "egemaps")
        res["eGeMAPS"] = probe_ua(eg.X, eg.y, eg.speakers, folds)
        for extra in args.extra_backbones:
            try:
                pooling = "meanstd" if extra in ("logmel", "mfcc") else "mean"
                layers = None if extra.startswith("whisper") else 0
                ex = corpus_features(name, extra, layers=layers, pooling=pooling)
                res[f"{extra} ({'mean+std' if pooling == 'meanstd' else 'all layers'})"] = probe_ua(ex.X, ex.y, ex.speakers, folds)
            except BackboneNotAvailableError as err:
                print(f"skipping {extra}: {err}", flush=True)
        results[name] = res
        print(name, {k: round(v, 3) for k, v in res.items()}, flush=True)
    cols = list(next(iter(results.values())))
    lines += [f"### {default.spec.name} (default backbone; fingerprint {default.spec.fingerprint}) per layer, and baselines", "",
              "| corpus | " + " | ".join(cols) + " | default minus eGeMAPS |", "|---" * (len(cols) + 2) + "|"]
    for name, res in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{res[c]:.3f}" for c in cols)
                     + f" | {res['all layers concatenated'] - res['eGeMAPS']:+.3f} |")
    lines += ["", "Target: default at least +0.15 UA over eGeMAPS on every corpus (issue #4). "
              + "; ".join(f"{n}: {'met' if r['all layers concatenated'] - r['eGeMAPS'] >= 0.15 else 'MISSED'}"
                          for n, r in results.items()), ""]
    if not args.skip_layer_choice:
        table, picks = layer_choice()
        counts = {p: picks.count(p) for p in dict.fromkeys(picks)}
        lines += ["### Choosing the default layer combination (nested speaker CV, training folds only)", "",
                  "Inner 4-fold speaker CV inside each outer training fold of RAVDESS and EmoDB; columns are inner "
                  "mean UA per candidate; the pick is then scored once on the outer test speakers.", "", *table, "",
                  f"Picks over the 10 outer folds: {counts}. Decision: adapt.embedding.DEFAULT_LAYERS = "
                  f"{max(counts, key=counts.get)!r} (most often best on training speakers).", ""]
    lines.append(f"Wall time: {time.time() - t0:.0f} s.")
    lines[2:2] = [provenance(), ""]
    out = publish("backbones", "\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
