"""Few-shot protocols on a feature table: personalization, new language/corpus, new emotion.

Each protocol takes a ``scenarios.tables.FeatureTable`` (or anything with ``X``, ``y``,
``speakers``, ``text_ids`` arrays) and returns ``FewShotRow`` records: UA with a bootstrap
confidence interval that resamples (target speaker, seed) groups, via ``adapt.metrics``.

* ``personalization`` — for every target speaker (leave-one-speaker-out, or speaker k-fold with
  every held-out speaker a target), a recipe trained on the other speakers adapts to ``K`` labelled
  enrollment clips per emotion of the target and is scored on the target's other clips. The main
  column is **sentence-disjoint** (enrollment and test clips never share a text id); the
  sentence-overlapping variant is the second column. ``si`` (speaker-independent) is the
  reference; ``gain`` is a recipe's UA minus ``si``'s on the same test clips.
* ``new_corpus`` — train on other corpora, enroll ``K`` clips per emotion from half of the new
  corpus's speakers, test on the other half; the supervised ceiling is the same head trained on
  all clips of the enrollment half (2-fold over speakers, both directions).
* ``new_emotion`` — hold one emotion out of training (speaker k-fold), enroll it with ``K`` clips
  from training speakers; report recall of the new class and the change of UA on the old ones.

When the target lacks ``K`` clips of an emotion (EmoDB speakers have 1-5 of some; RAVDESS has 2
neutral clips per sentence), enrollment takes what exists up to ``K`` (at most half of the
target's sentences in the sentence-disjoint mode; ``scenarios.splits.personalization_split`` with
``shortfall="cap"``) and ``shots_mean`` reports the effective count.

Example:
    >>> from scenarios.tables import corpus_features               # doctest: +SKIP
    >>> rows = personalization(corpus_features("emodb"), recipes=["si", "prototype+norm"], shots=(5,))  # doctest: +SKIP
    >>> [(r.method, r.mode, round(r.ua, 3)) for r in rows]          # doctest: +SKIP
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator, Sequence

import numpy as np

from adapt.errors import TooFewClipsError
from adapt.metrics import bootstrap_ci, per_class_recall, unweighted_average_recall
from adapt.normalization import standardize_by_speaker

from ..splits import leave_one_speaker_out, personalization_split, speaker_kfold
from .recipes import RecipeConfig, ReferenceCache, make_recipe
from .report import FewShotRow, Predictions, summarize

__all__ = ["personalization", "new_corpus", "new_emotion", "SPLIT_MODES", "OFFSETS"]

#: personalization split modes: sentence-disjoint enrollment / test, or not
SPLIT_MODES = {"disjoint": True, "overlap": False}


def personalization(features, *, recipes: Sequence[str] = ("si", "prototype+norm", "linear-ft+norm"),
                    shots: Iterable[int] = (1, 2, 5, 10), seeds: Iterable[int] = (0,), modes=("disjoint", "overlap"),
                    folds="loso", config: RecipeConfig | None = None, n_boot: int = 1000) -> list[FewShotRow]:
    """The personalization protocol (see the module docstring). ``si`` is always evaluated.

    Arguments:
        features: a ``FeatureTable`` of one corpus.
        recipes: recipe names from ``scenarios.fewshot.recipes.RECIPES``.
        shots: K values; seeds: enrollment draws per target; modes: ``"disjoint"`` / ``"overlap"``.
        folds: ``"loso"`` or an int (speaker k-fold; fewer trainings, every held-out speaker a target).
    Returns: one ``FewShotRow`` per (recipe, mode, K); ``ref_ua`` is ``si``'s UA on the same clips.
    """
    recipes = ["si"] + [m for m in recipes if m != "si"]
    for m in modes:
        if m not in SPLIT_MODES:
            raise ValueError(f"unknown mode {m!r}; known: {list(SPLIT_MODES)}")
    X, y, spk = features.X, np.asarray(features.y).astype(str), np.asarray(features.speakers).astype(str)
    txt = getattr(features, "text_ids", None)
    corpus = ",".join(sorted(set(np.asarray(getattr(features, "corpora", ["?"])).tolist())))
    cfg = config or RecipeConfig()
    # per-speaker statistics of training speakers use all their clips; computed once for every fold
    # (a target's own rows of Xn are never used: the target is standardized from its enrollment only)
    norm_opts = cfg.normalizer.get_params()
    Xn = standardize_by_speaker(X, spk, y, **norm_opts) if any(make_recipe(m).normalize for m in recipes) else None
    pred: dict = defaultdict(Predictions)
    for train_idx, targets in _folds(spk, folds):
        cache = ReferenceCache()
        fitted = {m: make_recipe(m, cfg).fit_reference(
            X[train_idx], y[train_idx], spk[train_idx], X_normalized=None if Xn is None else Xn[train_idx],
            cache=cache) for m in recipes}
        for target, mode, k, seed, enroll, test in _enrollments(spk, y, txt, targets, modes, shots, seeds):
            used = np.mean(list(_counts(y[enroll]).values()))
            for m, rec in fitted.items():
                pred[(m, mode, k)].add(y[test], rec.personalize(X[enroll], y[enroll], X[test]), f"{target}|{seed}", used)
    return summarize(pred, "personalization", corpus, n_boot, ref_key=lambda key: ("si", key[1], key[2]))


def _enrollments(spk, y, txt, targets, modes, shots, seeds) -> Iterator[tuple]:
    """Every ``(target, mode, K, seed, enroll_idx, test_idx)`` the protocol scores (skipping draws
    a target cannot provide)."""
    for target in targets:
        for mode in modes:
            for k in shots:
                for seed in seeds:
                    try:
                        enroll, test = personalization_split(spk, y, target, shots=k, text_ids=txt,
                                                             sentence_disjoint=SPLIT_MODES[mode], shortfall="cap",
                                                             seed=seed)
                    except TooFewClipsError:
                        continue
                    if len(test) and len(enroll):
                        yield target, mode, k, seed, enroll, test


def _folds(speakers: np.ndarray, folds) -> list[tuple[np.ndarray, list[str]]]:
    """(train_idx, target speakers) per fold: LOSO, or speaker k-fold with each test speaker a target."""
    if folds == "loso":
        return [(tr, [s]) for s, tr, _ in leave_one_speaker_out(speakers)]
    out = []
    for tr, te in speaker_kfold(speakers, n_splits=int(folds), seed=0):
        out.append((tr, sorted(set(speakers[te].tolist()))))
    return out


def _counts(labels) -> dict:
    u, c = np.unique(labels, return_counts=True)
    return dict(zip(u.tolist(), c.tolist()))


def new_corpus(train, target, *, recipes: Sequence[str] = ("linear-ft+norm", "prototype+norm"),
               shots: Iterable[int] = (1, 5, 10), seeds: Iterable[int] = (0,), norm_clips: int = 10,
               config: RecipeConfig | None = None, n_boot: int = 1000, ceiling: bool = True) -> list[FewShotRow]:
    """New language / corpus: recipes trained on ``train`` (other corpora) adapt to ``K`` clips per
    emotion of the ``target`` corpus's enrollment speakers; scored on its other speakers.

    The target's speakers are split in two halves (2-fold, both directions). ``+norm`` recipes
    standardize every target speaker from ``norm_clips`` of their clips used **unlabeled**; those
    clips are left out of scoring for every recipe. ``ref_ua`` is the supervised ceiling: the
    recipe's reference trained on all clips of the enrollment half (no other corpora), on the same
    test clips. ``extra["ratio"]`` = UA / ceiling (``ceiling=False`` skips it: NaN).
    """
    cfg = config or RecipeConfig()
    y_t, spk_t = np.asarray(target.y).astype(str), np.asarray(target.speakers).astype(str)
    corpus = ",".join(sorted(set(np.asarray(target.corpora).tolist())))
    rng = np.random.default_rng(0)
    # per-speaker normalization from a few unlabeled clips; those clips are not scored
    Xn_t = np.empty_like(target.X)
    scored = np.ones(len(y_t), dtype=bool)
    for s in np.unique(spk_t):
        rows = np.flatnonzero(spk_t == s)
        few = rows[rng.permutation(len(rows))[:min(norm_clips, max(1, len(rows) // 2))]]
        Xn_t[rows] = cfg.new_normalizer().fit(target.X[few]).transform(target.X[rows])
        scored[few] = False
    pred: dict = defaultdict(Predictions)
    ceil: dict = defaultdict(Predictions)
    halves = [(e, t[scored[t]]) for e, t in speaker_kfold(spk_t, n_splits=2, seed=0)]
    y_train, spk_train = np.asarray(train.y).astype(str), np.asarray(train.speakers).astype(str)
    for m in recipes:
        rec = make_recipe(m, cfg).fit_reference(train.X, y_train, spk_train)
        Xt = Xn_t if rec.normalize else target.X
        for half, (enroll_pool, test_pool) in enumerate(halves):
            if ceiling:   # supervised ceiling: a speaker-independent head on all clips of the enrollment half
                top = make_recipe("si", cfg).fit_reference(Xt[enroll_pool], y_t[enroll_pool], spk_t[enroll_pool])
                ceil[m].add(y_t[test_pool], top.reference.predict(Xt[test_pool]), "ceiling")
            for k in shots:
                for seed in seeds:
                    r = np.random.default_rng(1000 * seed + half)
                    enroll = np.concatenate([r.permutation(enroll_pool[y_t[enroll_pool] == e])[:k]
                                             for e in np.unique(y_t[enroll_pool])])
                    p = rec.personalize(Xt[enroll], y_t[enroll], Xt[test_pool], pre_normalized=True, restrict=True)
                    pred[(m, "new-corpus", k)].add(y_t[test_pool], p, [f"{s}|{seed}" for s in spk_t[test_pool]],
                                                   float(k))
    rows = summarize(pred, "new-corpus", corpus, n_boot)
    out = []
    for r in rows:
        c_ua = ceil[r.method].ua() if ceiling else float("nan")
        out.append(FewShotRow(**{**r.as_dict(), "ref_ua": c_ua, "extra": {"ratio": r.ua / c_ua}}))
    return out


OFFSETS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)   # candidate logit penalties of a new class (``-cal`` heads)


def new_emotion(features, *, heads: Sequence[str] = ("prototype", "linear"), shots: Iterable[int] = (1, 5, 10),
                seeds: Iterable[int] = (0,), folds: int = 5, normalize: bool = True, replay: int = 5,
                tolerance: float = 0.01, n_boot: int = 1000) -> list[FewShotRow]:
    """New emotion: for each emotion ``e`` and speaker fold, train without ``e``, then enroll ``e``
    with ``K`` clips of training speakers (``partial_fit``; ``linear`` also replays ``replay``
    clips per old class). Scored on the held-out speakers.

    Heads: ``prototype``, ``linear``, and ``prototype-cal`` / ``linear-cal``, which also subtract
    an offset from the new class's logit, chosen on *training* speakers only: a quarter of the
    fold's training speakers is held out, the enrollment is simulated on the rest, and the
    smallest offset in ``OFFSETS`` that keeps the held-out speakers' old-class UA within
    ``tolerance`` of its value before enrollment wins.

    ``ua`` = UA over all classes after enrollment; ``extra``: ``new_recall`` (recall of ``e``),
    ``old_before`` / ``old_after`` (UA on the old classes' test clips before / after, predictions
    over all classes), ``old_delta`` and ``offset`` (mean chosen offset). ``ref_ua`` = ``old_before``.
    """
    from functools import partial

    from adapt.heads import LinearHead, PrototypeHead

    X, y, spk = features.X, np.asarray(features.y).astype(str), np.asarray(features.speakers).astype(str)
    if normalize:
        # unlabeled per-speaker statistics (test speakers' labels must not shape their normalization)
        X = standardize_by_speaker(X, spk)
    corpus = ",".join(sorted(set(np.asarray(features.corpora).tolist())))
    shots = list(shots)
    known = ("prototype", "linear", "prototype-cal", "linear-cal")
    rows = []
    for head_name in heads:
        if head_name not in known:
            raise KeyError(f"unknown head {head_name!r} for new_emotion; known: {list(known)}")
        kind, calibrate = head_name.split("-")[0], head_name.endswith("-cal")
        make = PrototypeHead if kind == "prototype" else LinearHead
        enroll = partial(_enroll_new_emotion, X=X, y=y, kind=kind, replay=replay)

        acc = {k: defaultdict(list) for k in shots}
        for e in sorted(set(y.tolist())):
            for tr, te in speaker_kfold(spk, n_splits=folds, seed=0):
                old_tr, old_te = tr[y[tr] != e], te[y[te] != e]
                base = make().fit(X[old_tr], y[old_tr])
                p_before = base.predict(X[old_te]).astype(str)
                if calibrate:
                    tr_spk = np.unique(spk[tr])
                    val_spk = np.random.default_rng(0).permutation(tr_spk)[:max(1, len(tr_spk) // 4)]
                    in_tr, in_val = tr[~np.isin(spk[tr], val_spk)], tr[np.isin(spk[tr], val_spk)]
                    val_old = in_val[y[in_val] != e]
                    in_base = make().fit(X[in_tr][y[in_tr] != e], y[in_tr][y[in_tr] != e])
                    val_before = unweighted_average_recall(y[val_old], in_base.predict(X[val_old]).astype(str))
                for k in shots:
                    for seed in seeds:
                        head = enroll(base, tr, e, k, np.random.default_rng(seed))
                        offset = 0.0
                        if calibrate and len(val_old):
                            in_head = enroll(in_base, in_tr, e, k, np.random.default_rng(seed))
                            offset = OFFSETS[-1]
                            for b in OFFSETS:
                                after = _predict_offset(in_head, X[val_old], e, b)
                                if unweighted_average_recall(y[val_old], after) >= val_before - tolerance:
                                    offset = b
                                    break
                        p = _predict_offset(head, X[te], e, offset)
                        a = acc[k]
                        a["yt"].append(y[te]), a["yp"].append(p)
                        a["g"].append(np.array([f"{s}|{e}|{seed}" for s in spk[te]]))
                        a["new"].append(per_class_recall(y[te], p, labels=[e])[e])
                        a["old_t"].append(y[old_te]), a["before"].append(p_before)
                        a["after"].append(_predict_offset(head, X[old_te], e, offset))
                        a["offset"].append(offset)
        for k in shots:
            a = acc[k]
            cat = {n: np.concatenate(v) for n, v in a.items() if n not in ("new", "offset")}
            ua, lo, hi = bootstrap_ci(cat["yt"], cat["yp"], cat["g"], n_boot=n_boot, seed=0)
            ob = unweighted_average_recall(cat["old_t"], cat["before"])
            oa = unweighted_average_recall(cat["old_t"], cat["after"])
            rows.append(FewShotRow("new-emotion", corpus, head_name + ("+norm" if normalize else ""), "new-emotion",
                                   k, ua, lo, hi, ob, float(k), len(set(spk.tolist())),
                                   {"new_recall": float(np.nanmean(a["new"])), "old_before": ob, "old_after": oa,
                                    "old_delta": oa - ob, "offset": float(np.mean(a["offset"]))}))
    return rows


def _enroll_new_emotion(base, pool, e, k, r, *, X, y, kind: str, replay: int):
    """A copy of ``base`` after ``partial_fit`` on ``k`` clips of ``e`` from ``pool`` (``linear``
    heads also replay ``replay`` stored clips per old class)."""
    idx = r.permutation(pool[y[pool] == e])[:k]
    if kind == "linear":
        old = pool[y[pool] != e]
        idx = np.concatenate([idx] + [r.permutation(old[y[old] == c])[:replay] for c in np.unique(y[old])])
    return copy_head(base).partial_fit(X[idx], y[idx])


def _predict_offset(head, X, label: str, offset: float) -> np.ndarray:
    """Predictions with ``offset`` subtracted from ``label``'s logit.

    Log-probabilities differ from the logits by a per-row constant, so the arg-max (and the
    effect of the offset) is the same as on the logits.
    """
    scores = head.predict_log_proba(X)
    if offset:
        scores = scores.copy()
        scores[:, list(head.classes_).index(label)] -= offset
    return head.classes_[np.argmax(scores, axis=1)].astype(str)


def copy_head(head):
    """An independent copy of a fitted head (its state round trip)."""
    return type(head).from_state(head.get_state())
