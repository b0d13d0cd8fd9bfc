"""Frame tables of the corpora and the two protocols of the sequence-head benchmark.

``corpus_frames("ravdess")`` returns a ``FrameTable``: the clip metadata of ``FeatureTable`` plus
one cached float16 ``(L, T, D)`` frame entry per clip (``adapt.frames.extract_frames``: all layers,
12.5 Hz by default, memory-mapped from ``$SER_ADAPT_CACHE/frames``). ``FrameTable.sequences(layers)``
turns the entries into ``(T, F)`` inputs for the heads of ``adapt.heads.sequence``.

Protocols (``evaluate``), UA on held-out speakers or a held-out corpus, with training time per fold,
parameter count and inference time per clip:

* ``speaker_folds(table)``: 5-fold speaker-independent CV inside one corpus (``speaker_kfold``, seed 0);
* ``loco_folds(table)``: leave one corpus out (train on the other corpora, test on every clip of the
  held-out one, predictions restricted to the held-out corpus's emotions).

Example:
    >>> ft = corpus_frames("emodb")                               # doctest: +SKIP
    >>> len(ft), ft.frames[0].shape                              # doctest: +SKIP
    (535, (5, 25, 384))
    >>> X = ft.sequences("all"); X[0].shape                      # doctest: +SKIP
    (25, 1920)
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from adapt.frames import FrameOptions, extract_frames, reduce_rate, select_layers
from adapt.metrics import unweighted_average_recall

from .corpora import Corpus, load_corpus
from .splits import speaker_kfold
from .tables import FeatureTable, corpus_features

__all__ = ["FrameTable", "corpus_frames", "frame_tables", "speaker_folds", "loco_folds", "Fold", "Method",
           "FoldResult", "evaluate", "restricted_predict", "pooled_view"]


@dataclass(frozen=True)
class FrameTable:
    """Clip metadata (``meta``: a ``FeatureTable`` without embeddings) and one frame entry per clip."""

    meta: FeatureTable
    frames: list = field(repr=False)
    backbone: str = ""
    options: FrameOptions = FrameOptions()

    def __len__(self) -> int:
        return len(self.frames)

    def subset(self, rows: Sequence[int] | np.ndarray) -> "FrameTable":
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return FrameTable(self.meta.subset(rows), [self.frames[i] for i in rows], self.backbone, self.options)

    def sequences(self, layers: int | Sequence[int] | str = "all", *, dtype=np.float16,
                  pool: int = 1) -> list[np.ndarray]:
        """``(T_i, F)`` per clip (``adapt.frames.select_layers``); float16 by default (the heads
        standardize in float32). ``pool``: average this many more frames into one (``reduce_rate``:
        no frame dropped), e.g. 2 turns the cached 12.5 Hz into 6.25 Hz."""
        import torch

        out = [select_layers(f, layers, dtype=dtype) for f in self.frames]
        if pool > 1:
            out = [reduce_rate(torch.from_numpy(s.astype(np.float32))[None], pool)[0].numpy().astype(dtype)
                   for s in out]
        return out

    def seconds(self) -> float:
        rate = {"whisper-tiny.en": 50.0, "logmel": 100.0}.get(self.backbone)
        if rate is None:
            return float("nan")
        return float(sum(f.shape[1] for f in self.frames) * self.options.rate_factor / rate)

    @staticmethod
    def concat(parts: Sequence["FrameTable"]) -> "FrameTable":
        if not parts:
            raise ValueError("FrameTable.concat needs at least one table")
        return FrameTable(FeatureTable.concat([p.meta for p in parts]), [f for p in parts for f in p.frames],
                          parts[0].backbone, parts[0].options)


def corpus_frames(corpus_or_name: Corpus | str | os.PathLike, backbone=None, *, options: FrameOptions | None = None,
                  progress: bool = False, num_threads: int | None = None) -> FrameTable:
    """The ``FrameTable`` of a corpus (name, folder or ``Corpus``): frames from the frame cache,
    extracted on a miss."""
    from adapt.embedding import resolve_backbone

    corpus = corpus_or_name if isinstance(corpus_or_name, Corpus) else load_corpus(corpus_or_name)
    bb = resolve_backbone(backbone)
    opts = options or FrameOptions()
    frames = extract_frames(bb, corpus.paths(), options=opts, progress=progress, num_threads=num_threads)
    return FrameTable(FeatureTable.from_records(corpus.records), frames, bb.spec.name, opts)


def frame_tables(corpora: Iterable[str], backbone=None, **kw) -> FrameTable:
    """``corpus_frames`` of several corpora, concatenated in order."""
    return FrameTable.concat([corpus_frames(c, backbone, **kw) for c in corpora])


@dataclass(frozen=True)
class Fold:
    """Row indices of one train / test split and its name (``"ravdess/2"``, ``"loco/emodb"``)."""

    name: str
    train: np.ndarray
    test: np.ndarray
    restrict: bool = False   # predict within the test side's emotions only (LOCO)


def speaker_folds(meta: FeatureTable, corpus: str, n_splits: int = 5, seed: int = 0) -> list[Fold]:
    """Speaker-independent folds inside ``corpus`` (row indices into ``meta``)."""
    rows = np.flatnonzero(meta.corpora == corpus)
    return [Fold(f"{corpus}/{k}", rows[tr], rows[te])
            for k, (tr, te) in enumerate(speaker_kfold(meta.speakers[rows], n_splits, seed=seed))]


def loco_folds(meta: FeatureTable, corpora: Sequence[str], *, max_per_corpus: int | None = None,
               seed: int = 0) -> list[Fold]:
    """Leave one corpus out over ``corpora``: train on the others, test on all of the held-out one.

    ``max_per_corpus``: train on at most this many clips of each training corpus (a seeded random
    subset, the same for every held-out corpus; bounds the training cost). The test side is whole.
    """
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(meta.corpora), dtype=bool)
    for c in corpora:
        rows = np.flatnonzero(meta.corpora == c)
        if max_per_corpus is not None and len(rows) > max_per_corpus:
            rows = np.sort(rng.choice(rows, size=max_per_corpus, replace=False))
        keep[rows] = True
    return [Fold(f"loco/{c}", np.flatnonzero(keep & (meta.corpora != c)), np.flatnonzero(meta.corpora == c),
                 restrict=True) for c in corpora]


@dataclass(frozen=True)
class Method:
    """A head under test: ``make()`` builds an unfitted head; ``inputs`` names the feature view it takes
    (a key of the ``views`` given to ``evaluate``); ``aux`` lists metadata columns passed as
    auxiliary targets (``"corpora"``, ``"genders"``, ``"speakers"``) for an objective."""

    name: str
    make: Callable[[], object]
    inputs: str
    aux: tuple[str, ...] = ()


@dataclass(frozen=True)
class FoldResult:
    method: str
    fold: str
    ua: float
    train_s: float
    infer_ms_per_clip: float
    n_params: int


def _take(view, rows):
    return [view[i] for i in rows] if isinstance(view, list) else view[rows]


def restricted_predict(head, X, allowed: Sequence) -> np.ndarray:
    """Predictions among the ``allowed`` labels only (those the head knows)."""
    proba = head.predict_proba(X)
    keep = np.isin(head.classes_, list(allowed))
    if not keep.any():
        raise ValueError(f"the head knows none of the labels {list(allowed)}")
    proba = np.where(keep[None, :], proba, -np.inf)
    return head.classes_[np.argmax(proba, axis=1)]


def _n_params(head) -> int:
    if hasattr(head, "n_parameters"):
        return int(head.n_parameters())
    module = getattr(head, "module_", None)
    return int(sum(p.numel() for p in module.parameters())) if module is not None else 0


def evaluate(method: Method, fold: Fold, meta: FeatureTable, views: dict) -> FoldResult:
    """Fit ``method`` on the fold's training rows, score UA on its test rows (timed)."""
    view = views[method.inputs]
    Xtr, Xte = _take(view, fold.train), _take(view, fold.test)
    ytr, yte = meta.y[fold.train], meta.y[fold.test]
    head = method.make()
    kw = {}
    if method.aux:
        kw["aux"] = {a: getattr(meta, a)[fold.train] for a in method.aux}
    t0 = time.perf_counter()
    head.fit(Xtr, ytr, **kw)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = restricted_predict(head, Xte, np.unique(yte)) if fold.restrict else head.predict(Xte)
    infer = (time.perf_counter() - t0) / len(fold.test) * 1000
    return FoldResult(method.name, fold.name, float(unweighted_average_recall(yte, pred)), train_s, infer,
                      _n_params(head))


def pooled_view(meta_corpora: Sequence[str]) -> np.ndarray:
    """The default pooled embeddings (Whisper tiny.en, all layers mean-pooled, 1920 d) in corpus order."""
    return np.concatenate([corpus_features(c).X for c in meta_corpora])
