"""Predictions for held-out speakers, and the calibration of a head fitted on them (issue 15).

``heldout_predictions`` scores speakers a head was not trained on, on the application path: each
speaker's test clips (the test side of ``personalization_split(shots=k, shortfall="cap")``, as in
``scenarios.fewshot.unseen``: sentence-disjoint where the corpus has text ids) are scored
*unenrolled* (a user never seen) and *enrolled* (``k`` labelled clips per emotion from the
enrollment side; an emotion the head lacks becomes the user's own), restricted to the emotions of
the speaker's corpus (a label set). The raw logits are kept, so every calibration can be applied
after the fact.

``cross_fit`` produces such predictions for the *training* speakers of a head by cross-fitting:
the head's recipe is refitted without a part of the training data and scores that part, for
every part. Two schemes:

* ``"corpus"`` — leave one training corpus out: the held-out part is a corpus the refitted head
  never saw, as a deployment meets (the shipped head's scheme, and LOCO's inner loop);
* ``"speaker"`` — speaker folds over all training corpora (the held-out speakers' corpora were
  seen): the inner loop of the seen-corpora protocol.

``fit_calibration`` fits each path's calibration (``adapt.personal.calibration.fit_scaling``: a
temperature, by default a function of the clip's distance on the unenrolled path and of K on
the enrolled one, and optionally a per-class bias) on such predictions and the ``uncertain``
threshold that makes the non-flagged ones ``target`` accurate
(None where no threshold does: the application's default threshold then applies);
``calibrate_head`` does it all for a head from its training rows only, so no test speaker can
enter (tests/scenarios/test_calibration.py checks it).

Example:
    >>> from scenarios.tables import FeatureTable                                  # doctest: +SKIP
    >>> t = FeatureTable.from_corpora(["ravdess", "emodb", "emovo"])               # doctest: +SKIP
    >>> head = calibrate_head(t, np.arange(len(t.y)), scheme="corpus")             # doctest: +SKIP
    >>> head.calibration.temperature_unenrolled                                   # doctest: +SKIP
    1.9
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from adapt.personal import Calibration, GlobalHead, UserState
from adapt.personal.calibration import FEATURES, PATHS, calibration_features, fit_scaling, uncertain_threshold
from adapt.stats import softmax

from .fewshot.unseen import _first_k, speaker_splits
from .splits import speaker_kfold

__all__ = ["HeldOut", "CalibrationConfig", "heldout_predictions", "cross_fit", "fit_calibration", "calibrate_head",
           "fit_head_rows", "SCHEMES", "DEFAULT_TARGET"]

SCHEMES = ("corpus", "speaker")
#: the selective accuracy the shipped ``uncertain`` thresholds aim at (non-flagged predictions)
DEFAULT_TARGET = 0.8


@dataclass(frozen=True)
class CalibrationConfig:
    """How the calibration is fitted (every choice is made before looking at any test speaker).

    ``scheme``: ``"corpus"`` or ``"speaker"`` (module docstring); ``folds``: speaker folds of the
    ``"speaker"`` scheme; ``shots``: labelled clips per emotion of the simulated enrolled users;
    ``target``: selective accuracy of the non-flagged predictions; ``min_kept``: fewest predictions
    a threshold must keep; ``dim`` / ``lda_shrinkage``: the head's recipe; ``seed``;
    ``shots_grid``: the K (labelled clips per emotion) of the simulated enrolled users (None:
    ``(shots,)``); ``features_unenrolled`` / ``features_enrolled``: the ``calibration_features``
    a path's temperature depends on (``Calibration.terms_*``; empty: a constant); ``bias``: the paths that
    get a per-class bias (fitted jointly with the temperature, penalty ``l2``).

    The defaults are the method ``benchmarks.calibration`` picked on training cross-fits (its
    results list every variant tried): enrolled users simulated at K = 1, 2, 5, 10, the
    unenrolled temperature a function of the clip's distance from the head's classes
    (``log_distance``), the enrolled one of K (``log_shots``), no per-class bias.
    """

    scheme: str = "corpus"
    folds: int = 5
    shots: int = 5
    target: float = DEFAULT_TARGET
    min_kept: int = 20
    dim: int | None = 256
    lda_shrinkage: float = 0.3
    seed: int = 0
    shots_grid: tuple[int, ...] | None = (1, 2, 5, 10)
    features_unenrolled: tuple[str, ...] = ("log_distance",)
    features_enrolled: tuple[str, ...] = ("log_shots",)
    bias: tuple[str, ...] = ()
    l2: float = 0.01

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise KeyError(f"unknown calibration scheme {self.scheme!r}; known: {list(SCHEMES)}")
        unknown = [f for f in self.features_unenrolled + self.features_enrolled if f not in FEATURES]
        if unknown:
            raise KeyError(f"unknown calibration feature(s) {unknown}; known: {list(FEATURES)}")
        if not set(self.bias) <= set(PATHS):
            raise KeyError(f"bias paths must be among {list(PATHS)}, got {list(self.bias)}")
        if self.shots_grid is not None and (not self.shots_grid or min(self.shots_grid) < 1):
            raise ValueError(f"shots_grid must hold K >= 1, got {self.shots_grid}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")


@dataclass(frozen=True)
class HeldOut:
    """Predictions of held-out speakers: one row per (test clip, path).

    ``classes``: the columns of ``logits`` [N, C] (a row carries ``-inf`` where it was not scored:
    outside its label set); ``path``: ``"unenrolled"`` / ``"enrolled"``; ``y``, ``speaker``,
    ``corpus``, ``gender``, ``language``: per row; ``fold``: which head scored the row;
    ``shots``: labelled clips per emotion of the row's user (0 unenrolled; None: not recorded);
    ``features``: ``adapt.personal.calibration.FEATURES`` name -> [N] (the row's
    ``calibration_features``; None: not recorded).
    """

    classes: tuple[str, ...]
    logits: np.ndarray
    y: np.ndarray
    path: np.ndarray
    speaker: np.ndarray
    corpus: np.ndarray
    gender: np.ndarray
    language: np.ndarray
    fold: np.ndarray = field(default=None)
    shots: np.ndarray = field(default=None)
    features: dict = field(default=None)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def y_index(self) -> np.ndarray:
        pos = {c: i for i, c in enumerate(self.classes)}
        return np.array([pos[c] for c in self.y.tolist()], dtype=int)

    def proba(self, calibration: Calibration | None = None) -> np.ndarray:
        """``P`` [N, C] (0 outside a row's label set), with ``calibration``'s per-path temperatures."""
        return softmax(self.calibrated_logits(calibration), axis=1)

    def calibrated_logits(self, calibration: Calibration | None = None) -> np.ndarray:
        """``logits`` with ``calibration`` applied per path and row, as ``GlobalHead.predict_proba``
        does (``Calibration.apply``; a row's temperature from its ``features`` where the path has
        ``terms``)."""
        L = self.logits.copy()
        if calibration is None:
            return L
        for p in PATHS:
            m = np.flatnonzero(self.path == p)
            enrolled = p == "enrolled"
            if not len(m):
                continue
            feats = None
            if calibration.terms(enrolled):
                if self.features is None:
                    raise ValueError(f"this calibration's {p} temperature needs the rows' features")
                feats = {k: v[m] for k, v in self.features.items()}
            L[m] = calibration.apply(L[m], self.classes, enrolled, feats)
        return L

    def select(self, mask: np.ndarray) -> "HeldOut":
        m = np.asarray(mask)
        return HeldOut(self.classes, self.logits[m], self.y[m], self.path[m], self.speaker[m], self.corpus[m],
                       self.gender[m], self.language[m], None if self.fold is None else self.fold[m],
                       None if self.shots is None else self.shots[m],
                       None if self.features is None else {k: v[m] for k, v in self.features.items()})

    @staticmethod
    def concat(parts: Sequence["HeldOut"]) -> "HeldOut":
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError("nothing to concatenate")
        classes = tuple(dict.fromkeys(c for p in parts for c in p.classes))
        blocks = []
        for p in parts:
            L = np.full((len(p), len(classes)), -np.inf)
            L[:, [classes.index(c) for c in p.classes]] = p.logits
            blocks.append(L)
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])   # noqa: E731
        folds = None if any(p.fold is None for p in parts) else cat("fold")
        shots = None if any(p.shots is None for p in parts) else cat("shots")
        names = None if any(p.features is None for p in parts) else sorted(set.intersection(
            *(set(p.features) for p in parts)))
        feats = None if names is None else {k: np.concatenate([p.features[k] for p in parts]) for k in names}
        return HeldOut(classes, np.vstack(blocks), cat("y"), cat("path"), cat("speaker"), cat("corpus"),
                       cat("gender"), cat("language"), folds, shots, feats)


def _genders(table) -> np.ndarray:
    g = getattr(table, "genders", None)
    return np.full(len(table.y), "", dtype=object) if g is None else np.asarray(g).astype(object)


def heldout_predictions(head: GlobalHead, table, rows: np.ndarray, *, shots: int = 5, seed: int = 0,
                        fold: int = 0, paths: Sequence[str] = PATHS, shots_grid: Sequence[int] | None = None) -> HeldOut:
    """Unenrolled and ``shots``-enrolled predictions of every speaker in ``rows`` of ``table``
    (none of whom ``head`` may have been trained on; the caller guarantees it).

    ``shots_grid``: enrolled users are simulated once per K in it (each K with its own split,
    ``speaker_splits(shots=K)``), the unenrolled rows with ``shots``'s split; default
    ``(shots,)``. Every row records its K (``HeldOut.shots``) and its ``calibration_features``."""
    rows = np.asarray(rows, dtype=int)
    corpora = np.asarray(table.corpora).astype(str)
    genders = _genders(table)
    classes = tuple(head.classes)
    grid = tuple(shots_grid) if shots_grid else (shots,)
    out_l, meta = [], []
    for c in dict.fromkeys(corpora[rows].tolist()):
        in_c = rows[corpora[rows] == c]
        labels = sorted(set(table.y[np.flatnonzero(corpora == c)].tolist()))
        runs = ([("unenrolled", shots)] if "unenrolled" in paths else []) + \
            ([("enrolled", k) for k in grid] if "enrolled" in paths else [])
        for p, k in runs:
            for _, enroll, test, _ in speaker_splits(table, in_c, k, seed):
                if len(test) == 0:
                    continue
                Xt = table.X[test]
                if p == "unenrolled":
                    st = None
                    ls = [lab for lab in labels if lab in head.classes]
                else:
                    e = _first_k(enroll, table.y, k)
                    ye = table.y[e].tolist()
                    st = UserState.empty(head.input_dim).add(table.X[e], ye,
                                                             custom=[lab for lab in ye if lab not in head.classes])
                    avail = head.available_classes(st)
                    ls = [lab for lab in labels if lab in avail]
                cls_, L = head.predict_logits(Xt, st, None, ls)
                feats = calibration_features(head, Xt, st)
                for lab in cls_:
                    if lab not in classes:
                        classes = classes + (lab,)
                full = np.full((len(test), len(classes)), -np.inf)
                full[:, [classes.index(lab) for lab in cls_]] = L
                out_l.append(full)
                meta.append((test, p, k if p == "enrolled" else 0, feats))
    if not out_l:
        return HeldOut(classes, np.zeros((0, len(classes))), *(np.zeros(0, dtype=object) for _ in range(6)),
                       np.zeros(0, dtype=int), np.zeros(0, dtype=int), {f: np.zeros(0) for f in FEATURES})
    width = len(classes)
    L = np.vstack([np.hstack([b, np.full((len(b), width - b.shape[1]), -np.inf)]) for b in out_l])
    test_rows = np.concatenate([m[0] for m in meta])
    path = np.concatenate([[m[1]] * len(m[0]) for m in meta]).astype(object)
    k_rows = np.concatenate([np.full(len(m[0]), m[2]) for m in meta]).astype(int)
    feats = {f: np.concatenate([m[3][f] for m in meta]).astype(np.float64) for f in FEATURES}
    return HeldOut(classes, L, table.y[test_rows].astype(object), path, table.speakers[test_rows].astype(object),
                   corpora[test_rows].astype(object), genders[test_rows],
                   np.asarray(table.languages)[test_rows].astype(object), np.full(len(test_rows), fold), k_rows, feats)


def fit_head_rows(table, rows: np.ndarray, config: CalibrationConfig, **kw) -> GlobalHead:
    """The head's recipe (``GlobalHead.fit``) on ``rows`` of ``table``."""
    rows = np.asarray(rows, dtype=int)
    return GlobalHead.fit(table.X[rows], table.y[rows], speakers=table.speakers[rows], corpora=table.corpora[rows],
                          dim=config.dim, lda_shrinkage=config.lda_shrinkage, **kw)


def cross_fit(table, rows: np.ndarray, config: CalibrationConfig | None = None, *, verbose: bool = False) -> HeldOut:
    """Predictions for every training speaker in ``rows``, each from a head refitted without
    their part (``config.scheme``); nothing outside ``rows`` is read."""
    config = config or CalibrationConfig()
    rows = np.asarray(rows, dtype=int)
    corpora = np.asarray(table.corpora).astype(str)[rows]
    if config.scheme == "corpus":
        names = sorted(set(corpora.tolist()))
        if len(names) < 2:
            raise ValueError(f"the 'corpus' scheme needs at least two training corpora, got {names}")
        parts = [(rows[corpora != c], rows[corpora == c]) for c in names]
    else:
        parts = [(rows[tr], rows[te]) for tr, te in speaker_kfold(table.speakers[rows], config.folds, seed=config.seed)]
    out = []
    for f, (train, held) in enumerate(parts):
        head = fit_head_rows(table, train, config)
        out.append(heldout_predictions(head, table, held, shots=config.shots, seed=config.seed, fold=f,
                                       shots_grid=config.shots_grid))
        if verbose:
            print(f"    cross-fit part {f + 1}/{len(parts)}: {len(held)} clips", flush=True)
    return HeldOut.concat(out)


def fit_calibration(held: HeldOut, config: CalibrationConfig | None = None) -> Calibration:
    """Per-path calibration (``fit_scaling``, Brier score: the temperature, on the enrolled path
    a function of ``config.features_*``, and a per-class bias on the paths in ``config.bias``) and
    ``uncertain`` threshold (``uncertain_threshold`` for ``config.target``) from held-out
    predictions."""
    config = config or CalibrationConfig()
    yi = held.y_index
    finite = np.isfinite(held.logits[np.arange(len(held)), yi])    # rows whose true emotion was scorable
    thresholds = {}
    info = {"scheme": config.scheme, "shots": config.shots, "target": config.target,
            "shots_grid": list(config.shots_grid or (config.shots,)),
            "features": {"unenrolled": list(config.features_unenrolled), "enrolled": list(config.features_enrolled)},
            "bias": list(config.bias)}
    kw: dict = {}
    for p in PATHS:
        m = (held.path == p) & finite
        if m.sum() < 2:
            raise ValueError(f"too few held-out predictions on the {p} path to calibrate ({int(m.sum())})")
        names = config.features_enrolled if p == "enrolled" else config.features_unenrolled
        F = None
        if names:
            if held.features is None:
                raise ValueError("the held-out predictions carry no features")
            F = np.column_stack([held.features[f][m] for f in names])
            ok = np.isfinite(F)
            if not ok.any(axis=0).all():
                raise ValueError(f"no finite value of some of {list(names)} on the {p} path")
            # an undefined feature counts as its centre (the mean), as ``Calibration.temperature`` does
            F = np.where(ok, F, np.nanmean(np.where(ok, F, np.nan), axis=0))
        T, slopes, centres, b = fit_scaling(held.logits[m], yi[m], features=F, bias=p in config.bias, l2=config.l2)
        kw[f"temperature_{p}"] = T
        if p in config.bias:
            kw[f"bias_{p}"] = {c: float(v) for c, v in zip(held.classes, b) if v != 0.0}
        if F is not None:
            # with the range of each feature in these rows: the temperature is never extrapolated
            kw[f"terms_{p}"] = {f: [float(c), float(sl), float(F[:, j].min()), float(F[:, j].max())]
                                for j, (f, c, sl) in enumerate(zip(names, centres, slopes))}
    cal = Calibration(**kw)
    P = held.proba(cal)
    conf, correct = P.max(axis=1), P.argmax(axis=1) == yi
    for p in PATHS:
        m = held.path == p
        t = uncertain_threshold(conf[m], correct[m], config.target, min_kept=config.min_kept)
        # infeasible (no threshold reaches the target): keep the application's default rather
        # than flag every prediction of the path; info records it
        thresholds[p] = t if t < 1.0 else None
        kept = conf[m] >= t
        info[p] = {"clips": int(m.sum()), "speakers": int(len(set(held.speaker[m].tolist()))),
                   "accuracy": float(correct[m].mean()), "temperature": kw[f"temperature_{p}"],
                   "mean_confidence": float(conf[m].mean()),
                   "kept": float(kept.mean()), "feasible": bool(t < 1.0),
                   "selective_accuracy": float(correct[m][kept].mean()) if kept.any() else float("nan")}
    return replace(cal, uncertain_unenrolled=thresholds["unenrolled"], uncertain_enrolled=thresholds["enrolled"],
                   target=config.target, info=info)


def calibrate_head(table, rows: np.ndarray, config: CalibrationConfig | None = None, *, head: GlobalHead | None = None,
                   verbose: bool = False, **fit_kw) -> GlobalHead:
    """The head of ``rows`` (``head``, else fitted on them) with a calibration fitted by
    cross-fitting on the same rows only: ``table``'s other rows never enter."""
    config = config or CalibrationConfig()
    rows = np.asarray(rows, dtype=int)
    if head is None:
        head = fit_head_rows(table, rows, config, **fit_kw)
    cal = fit_calibration(cross_fit(table, rows, config, verbose=verbose), config)
    return replace(head, calibration=cal)
