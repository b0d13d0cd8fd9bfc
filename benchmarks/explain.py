"""Explanations: are the relevance curves faithful? Deletion / insertion against random (issue #15).

Writes ``benchmarks/results/explain.md`` (``--publish`` also rebuilds BENCHMARKS.md).

    .venv/bin/python -m benchmarks.explain                       # six corpora, 20 clips each (~20 min, 2 cores)
    .venv/bin/python -m benchmarks.explain --clips 4 --corpora emodb --no-write     # a smoke run
    .venv/bin/python -m benchmarks.explain --write-cue-model adapt/assets/egemaps_cues.npz
    .venv/bin/python -m benchmarks.explain --select-only --threads 1   # only choose the IG variant

Choosing the IG variant (``select_variant``, run first unless ``--select-clips 0``): on TRAINING
speakers only, an inner quarter of each corpus's training speakers is held out, a head is fitted on
the rest, and every variant in ``VARIANTS`` (baseline x output x reduction) is scored by deletion
AUC / random on ``--select-clips`` clips per corpus; its table and pick go into the results file,
which also says whether ``integrated_gradients``' defaults are the pick.

Protocol. In every corpus a seeded quarter of the speakers (at least two) is held out; a global
head (``GlobalHead.fit``, the shipped recipe: 256 dims, LDA shrinkage 0.3, corpus-balanced means) is
trained on every clip of the other speakers of all six corpora, and a seeded sample of ``--clips``
clips of the held-out speakers is explained through the public ``Personalizer`` API as a user never
seen (``adapt.explain.for_user``). For each clip and its predicted class: integrated gradients on
the log-mel (``--steps`` points per baseline, ``integrated_gradients``' default variant),
occlusion (zeros), and ``--seeds`` random rankings, all on the same
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


#: IG variants compared on training speakers (``select_variant``): name -> ``integrated_gradients``
#: keywords. baseline: "silence" (log-mel of digital silence, the old default) or "floor" (the clip's
#: own floor, what a deleted window looks like); output: attribute p or log p; reduce: signed sum
#: per window or the sum of the positive part. "deleted": the mean IG over 4 baselines, each the
#: clip with a seeded random subset of windows silenced in the waveform (4x the cost of one run).
VARIANTS = {f"{b}/{o}/{r}": {"baseline": b, "output": o, "reduce": r}
            for b in ("silence", "floor", "deleted") for o in ("prob", "logprob") for r in ("sum", "positive")}
OLD_VARIANT = "silence/prob/sum"


def default_variant() -> str:
    """The name in ``VARIANTS`` of ``integrated_gradients``' defaults (``output`` = the model's, "prob")."""
    import inspect

    from adapt.explain.attribution import integrated_gradients

    kw = {n: q.default for n, q in inspect.signature(integrated_gradients).parameters.items()}
    return f"{kw['baseline']}/{kw['output'] or 'prob'}/{kw['reduce']}"


def variant_aucs(model, wave, *, steps: int, window: float, seeds: int) -> dict:
    """Deletion AUC of every IG variant in ``VARIANTS`` and of ``seeds`` random rankings on one clip
    (one IG run per baseline x output; the reductions are re-summed from its raw attributions)."""
    from adapt.explain.attribution import integrated_gradients, rereduced
    from adapt.explain.faithfulness import perturbation_curves, random_relevance

    rels, deltas, k = [], {}, None
    for b in ("silence", "floor", "deleted"):
        for o in ("prob", "logprob"):
            r = integrated_gradients(model, wave, n_steps=steps, window_s=window, baseline=b, output=o, target=k)
            k = r.target_index
            for red in ("sum", "positive"):
                name = f"{b}/{o}/{red}"
                rels.append(replace(rereduced(model, r, red), method=name, raw=None))
                deltas[name] = r.delta
    rels += [random_relevance(rels[0], seed=s) for s in range(seeds)]
    curves = perturbation_curves(model, wave, rels, kinds=("deletion",))
    out = {"target": rels[0].target, "p": rels[0].probability, "delta": deltas, "deletion": {}}
    for c in curves:
        out["deletion"].setdefault(c.method.split(":")[0], []).append(c.auc)
    return out


def select_variant(table, corpora, args) -> tuple[str, str]:
    """Choose the IG variant on TRAINING speakers only: in every corpus a seeded quarter of the
    training speakers (seed ``SEED + 1``) is held out again, a global head is fitted the same way on
    the remaining training speakers of all corpora, and ``--select-clips`` clips per corpus of the
    inner speakers are explained with every variant. Pick: the variant meeting IG/random <= 0.8 on
    most corpora, then the lowest worst-corpus ratio. Returns (picked name, Markdown section)."""
    from adapt import Personalizer, get_backbone
    from adapt.explain.model import for_user
    from adapt.personal import GlobalHead

    held = np.zeros(len(table.y), bool)
    for c in SHARED_CORPORA:
        held |= np.isin(np.asarray(table.speakers), held_out_speakers(table, c))
    train = table.subset(~held)
    inner = np.zeros(len(train.y), bool)
    inner_spk = {c: held_out_speakers(train, c, seed=SEED + 1) for c in SHARED_CORPORA}
    for c in SHARED_CORPORA:
        inner |= np.isin(np.asarray(train.speakers), inner_spk[c])
    fit = train.subset(~inner)
    head = GlobalHead.fit(fit.X, fit.y, speakers=np.asarray(fit.speakers), corpora=np.asarray(fit.corpora),
                          info={"backbone": table.backbone, "benchmark": "explain --select"})
    p = Personalizer(get_backbone(), head, ":memory:")
    results = {}
    for c in corpora:
        cache = bench_cache("explain") / (f"select{len(VARIANTS)}-{c}-{args.select_clips}-{args.steps}-"
                                          f"{args.window}-{args.seeds}.json")
        if cache.is_file() and not args.fresh:
            results[c] = json.loads(cache.read_text())
            continue
        rows = []
        for i in sample_clips(train, inner_spk[c], args.select_clips, seed=SEED + 1):
            model, wave, _ = for_user(p, None, str(train.paths[i]))
            rows.append(variant_aucs(model, wave, steps=args.steps, window=args.window, seeds=args.seeds))
            d = rows[-1]["deletion"]
            print(f"  select {c} {len(rows)}/{args.select_clips}: old {d[OLD_VARIANT][0]:.3f} floor/prob/sum "
                  f"{d['floor/prob/sum'][0]:.3f} rand {np.mean(d['random']):.3f}", flush=True)
        cache.write_text(json.dumps(rows))
        results[c] = rows
    ratio = {v: {c: np.mean([r["deletion"][v][0] for r in rows]) / np.mean([np.mean(r["deletion"]["random"])
                                                                          for r in rows])
                 for c, rows in results.items()} for v in VARIANTS}
    delta = {v: np.median([r["delta"][v] for rows in results.values() for r in rows]) for v in VARIANTS}
    met = {v: sum(x <= 0.8 for x in ratio[v].values()) for v in VARIANTS}
    pick = min(VARIANTS, key=lambda v: (-met[v], max(ratio[v].values()), np.mean(list(ratio[v].values()))))
    n_spk = sum(len(v) for v in inner_spk.values())
    lines = ["### Choosing the IG variant on training speakers", "",
             f"Selection (`--select`, training speakers only): in every corpus a seeded quarter of the *training* "
             f"speakers ({n_spk} in all) is held out again, a global head is fitted the same way on the other "
             f"{len(set(np.asarray(fit.speakers).tolist()))} training speakers, and {args.select_clips} clips per "
             f"corpus of the inner speakers are explained with every variant (IG {args.steps} steps, windows of "
             f"{args.window * 1000:.0f} ms, {args.seeds} random seeds; predicted class). Variant = baseline / "
             f"attributed output / per-window reduction; deletion AUC of IG / of random, per corpus. Rule: most "
             f"corpora at <= 0.8, then the lowest worst-corpus ratio. Cost per clip: one IG run (`--steps` "
             f"forward + backward passes on the log-mel) for the silence and floor baselines, four for "
             f"`deleted` (four baselines).", "",
             "| variant | " + " | ".join(results) + " | met | worst | IG delta (median) |",
             "|---|" + "---|" * (len(results) + 3)]
    for v in VARIANTS:
        mark = " (picked)" if v == pick else " (old default)" if v == OLD_VARIANT else ""
        lines.append(f"| {v}{mark} | " + " | ".join(f"{ratio[v][c]:.2f}" for c in results)
                     + f" | {met[v]} of {len(results)} | {max(ratio[v].values()):.2f} | {delta[v]:.3f} |")
    dv = default_variant()
    lines += ["", f"Picked: `{pick}`. `integrated_gradients`' default is `{dv}`"
              + ("." if dv == pick else f" (NOT the pick: the held-out table below uses `{dv}`).")]
    return pick, "\n".join(lines)


def explain_one(model, wave, *, steps: int, window: float, seeds: int) -> dict:
    from adapt.explain.attribution import integrated_gradients, occlusion
    from adapt.explain.faithfulness import perturbation_curves, random_relevance

    t0 = time.perf_counter()
    ig = integrated_gradients(model, wave, n_steps=steps, window_s=window)
    t_ig = time.perf_counter() - t0
    t0 = time.perf_counter()
    occ = occlusion(model, wave, window_s=window, target=ig.target_index)
    t_occ = time.perf_counter() - t0
    # the old default (baseline: the log-mel of digital silence), same grid and target, for contrast
    ig_old = replace(integrated_gradients(model, wave, n_steps=steps, window_s=window, target=ig.target_index,
                                          **VARIANTS[OLD_VARIANT]), method="igold")
    rels = [ig, occ, ig_old] + [random_relevance(ig, seed=s) for s in range(seeds)]
    curves = perturbation_curves(model, wave, rels)
    out = {"target": ig.target, "p": ig.probability, "delta": ig.delta, "delta_old": ig_old.delta,
           "windows": len(ig.values),
           "t_ig": t_ig, "t_occ": t_occ}
    for c in curves:
        key = c.method.split(":")[0]
        out.setdefault(f"{c.kind}_{key}", []).append(c.auc)
        out.setdefault(f"curve_{c.kind}_{key}", []).append(c.probs.tolist())
    return out


def run_corpus(p, table, corpus: str, args) -> list[dict]:
    from adapt.explain.model import for_user

    variant = default_variant().replace("/", "_")
    cache = bench_cache("explain") / f"{corpus}-{variant}-{args.clips}-{args.steps}-{args.window}-{args.seeds}.json"
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


def render(results: dict, args, cue_text: str, layer_text: str, elapsed: float, select_text: str = "") -> str:
    head = ("| corpus | clips | mean s | deletion IG | deletion occlusion | deletion random | IG / random | "
            "occlusion / random | target IG <= 0.8x | insertion IG | insertion occlusion | insertion random | "
            "IG delta (median) | old IG (silence baseline) / random |")
    lines = ["## Explanations: faithfulness of relevance over time (issue #15)", "", provenance(), "",
             __doc__.split("Protocol. ", 1)[1].split("\n\nThe eGeMAPS")[0].replace("\n", " "), "",
             f"Settings: {args.clips} clips per corpus, IG {args.steps} steps, windows of {args.window * 1000:.0f} ms, "
             f"{args.seeds} random seeds, seed {SEED}; IG variant `{default_variant()}` (baseline / output / "
             f"reduction, the defaults of `integrated_gradients`; the last column: the old `{OLD_VARIANT}` on the "
             f"same clips); mean AUC over clips [95 % bootstrap interval over clips]. "
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
                     f"{np.median([r['delta'] for r in rows]):.3f} | {g('deletion_igold').mean() / d_rand.mean():.2f} |")
    met = [c for c, v in summary.items() if v <= 0.8]
    if select_text:
        lines[6:6] = [select_text, "", "### Held-out speakers, with the picked variant", ""]
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
    ap.add_argument("--select-clips", type=int, default=8, help="clips per corpus of inner training speakers "
                    "for choosing the IG variant (0: skip the selection)")
    ap.add_argument("--select-only", action="store_true", help="run only the selection and print it")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--fresh", action="store_true", help="ignore cached per-corpus runs")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--publish", action="store_true", help="also rebuild BENCHMARKS.md")
    args = ap.parse_args()
    import torch

    from adapt import Personalizer, get_backbone
    from adapt.personal import GlobalHead
    from scenarios.tables import FeatureTable

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    corpora = [c for c in args.corpora.split(",") if c]
    table = FeatureTable.from_corpora(list(SHARED_CORPORA))
    select_text = ""
    if args.select_clips > 0:
        pick, select_text = select_variant(table, corpora, args)
        print(select_text, flush=True)
        if args.select_only:
            return
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
    text = render(results, args, cue_text, layer_text, time.perf_counter() - t0, select_text)
    print(text)
    if args.publish:
        publish("explain", text)
    elif not args.no_write:
        (RESULTS / "explain.md").write_text(text)


if __name__ == "__main__":
    main()
