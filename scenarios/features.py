"""The feature table everyone uses: one row per clip, embeddings plus labels and metadata.

``corpus_features("ravdess")`` embeds a corpus with a backbone (default: the offline Whisper
tiny.en, all layers mean-pooled and concatenated) and returns a ``FeatureSet``. The per-layer
pooled table of each corpus is consolidated in one ``.npz`` under ``cache_dir("features")``, keyed
by corpus, backbone fingerprint, pooling and the clips' ids and sizes, so calls after the first take
about a second; the per-clip ``EmbeddingCache`` sits underneath.

Example:
    >>> fs = corpus_features("emodb")                       # doctest: +SKIP
    >>> fs.X.shape, fs.y[:2], len(set(fs.speakers))         # doctest: +SKIP
    ((535, 1920), array(['happy', 'neutral'], dtype='<U7'), 10)
    >>> train = fs.subset(fs.speakers != fs.speakers[0])    # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from adapt.cache import atomic_write_bytes, cache_dir
from adapt.pooling import combine_layers

from .corpora import Corpus, load_corpus

__all__ = ["FeatureSet", "corpus_features", "corpus_layer_features"]

log = logging.getLogger(__name__)
_TABLE_VERSION = "v1"


@dataclass(frozen=True)
class FeatureSet:
    """Embeddings ``X`` float32 ``(N, D)`` with per-row labels and metadata (all length ``N``).

    ``y``: canonical emotion names (str array); ``speakers``, ``languages``, ``corpora``,
    ``clip_ids``, ``genders``: str arrays; ``text_ids``: object array, ``None`` where the corpus has
    no fixed sentences. ``backbone`` and ``layers`` describe how ``X`` was made.
    """

    X: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    text_ids: np.ndarray
    languages: np.ndarray
    corpora: np.ndarray
    clip_ids: np.ndarray
    genders: np.ndarray | None = None
    backbone: str = ""
    layers: str = ""

    def __post_init__(self) -> None:
        if self.X.ndim != 2:
            raise ValueError(f"FeatureSet.X must be (N, D), got shape {self.X.shape}")
        n = self.X.shape[0]
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray) and len(v) != n:
                raise ValueError(f"FeatureSet.{f.name} has {len(v)} rows, X has {n}")

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])

    def subset(self, indices_or_mask: Sequence[int] | np.ndarray) -> "FeatureSet":
        """Rows by integer indices or a boolean mask of length ``N``."""
        sel = np.asarray(indices_or_mask)
        if sel.dtype == bool and sel.shape != (len(self),):
            raise ValueError(f"boolean mask must have shape ({len(self)},), got {sel.shape}")
        if sel.dtype != bool and sel.size and not np.issubdtype(sel.dtype, np.integer):
            raise TypeError(f"subset needs integer indices or a boolean mask, got dtype {sel.dtype}")
        kw = {f.name: (getattr(self, f.name)[sel] if isinstance(getattr(self, f.name), np.ndarray)
                       else getattr(self, f.name)) for f in fields(self)}
        return FeatureSet(**kw)

    @staticmethod
    def concat(parts: Sequence["FeatureSet"]) -> "FeatureSet":
        """Stack feature sets row-wise (same ``D`` required; e.g. several corpora)."""
        if not parts:
            raise ValueError("FeatureSet.concat needs at least one FeatureSet")
        dims = {p.dim for p in parts}
        if len(dims) != 1:
            raise ValueError(f"cannot concat FeatureSets of different dims {sorted(dims)}")
        kw = {}
        for f in fields(FeatureSet):
            vals = [getattr(p, f.name) for p in parts]
            if f.name in ("backbone", "layers"):
                kw[f.name] = vals[0] if len(set(vals)) == 1 else "+".join(dict.fromkeys(vals))
            elif any(v is None for v in vals):
                kw[f.name] = None
            else:
                kw[f.name] = np.concatenate(vals)
        return FeatureSet(**kw)


def _as_corpus(corpus_or_name: Corpus | str | os.PathLike) -> Corpus:
    return corpus_or_name if isinstance(corpus_or_name, Corpus) else load_corpus(corpus_or_name)


def _table_key(corpus: Corpus, fingerprint: str, pooling: str) -> str:
    h = hashlib.sha256(f"{_TABLE_VERSION}|{fingerprint}|{pooling}".encode())
    for r in corpus.records:
        try:
            size = r.path.stat().st_size
        except OSError:
            size = -1
        h.update(f"{r.clip_id}:{size};".encode())
    return h.hexdigest()[:20]


def _load_table(path) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["per_layer"]
    except FileNotFoundError:
        return None
    except Exception as err:  # noqa: BLE001 - a damaged table is rebuilt from the per-clip cache
        log.warning("feature table %s unreadable (%s); rebuilding", path, err)
        return None


def corpus_layer_features(corpus_or_name: Corpus | str | os.PathLike, backbone=None, *,
                          pooling: str = "mean", progress: bool = False, **embed_opts) -> np.ndarray:
    """Per-layer pooled embeddings of every clip of a corpus, in record order: ``(N, L, D')``.

    A ``Corpus`` that is a subset of a full corpus folder is served from that folder's table when it
    exists; otherwise only the subset's clips are embedded (through the per-clip cache).
    """
    from adapt.embed import embed_layers, resolve_backbone

    corpus = _as_corpus(corpus_or_name)
    bb = resolve_backbone(backbone)
    full = load_corpus(corpus.root) if (corpus.root / "metadata.csv").is_file() else corpus
    same = [r.clip_id for r in full.records] == [r.clip_id for r in corpus.records]
    key = _table_key(full, bb.spec.fingerprint, pooling)
    path = cache_dir("features") / f"{full.name}-{bb.spec.name.replace('/', '_').replace(':', '_')}-{key}.npz"
    table = _load_table(path)
    if table is not None and table.shape[0] != len(full):
        table = None
    if table is None and not same:
        # a subset and no consolidated table yet: embed just these clips (per-clip cache)
        return embed_layers(bb, corpus.paths(), pooling=pooling, progress=progress, **embed_opts)
    if table is None:
        table = embed_layers(bb, full.paths(), pooling=pooling, progress=progress, **embed_opts)
        buf = io.BytesIO()
        np.savez(buf, per_layer=table)
        atomic_write_bytes(path, buf.getvalue())
    if same:
        return table
    row = {r.clip_id: i for i, r in enumerate(full.records)}
    missing = [r.clip_id for r in corpus.records if r.clip_id not in row]
    if missing:
        raise KeyError(f"clips {missing[:3]} are not in corpus folder {corpus.root}")
    return table[[row[r.clip_id] for r in corpus.records]]


def corpus_features(corpus_or_name: Corpus | str | os.PathLike, backbone=None, *,
                    layers: int | Sequence[int] | str | None = None, weights: Sequence[float] | None = None,
                    pooling: str = "mean", progress: bool = False, **embed_opts) -> FeatureSet:
    """The ``FeatureSet`` of a corpus (name, folder or ``Corpus``) under a backbone.

    Arguments:
        backbone: a ``Backbone``, a registry name or ``None`` (offline default).
        layers / weights: layer combination (see ``adapt.pooling.combine_layers``); ``None`` uses
            ``adapt.embed.DEFAULT_LAYERS`` ("all": every layer concatenated).
        pooling: ``"mean"`` or ``"meanstd"``.
        progress: progress bar while embedding (first call only).
        embed_opts: passed to ``adapt.embed.embed_layers`` (``batch_size``, ``num_threads``...).
    """
    from adapt.embed import DEFAULT_LAYERS, resolve_backbone

    corpus = _as_corpus(corpus_or_name)
    bb = resolve_backbone(backbone)
    layers = DEFAULT_LAYERS if layers is None else layers
    per_layer = corpus_layer_features(corpus, bb, pooling=pooling, progress=progress, **embed_opts)
    X = np.ascontiguousarray(combine_layers(per_layer, layers, weights), dtype=np.float32)
    recs = corpus.records
    text_ids = np.empty(len(recs), dtype=object)
    text_ids[:] = [r.text_id for r in recs]
    return FeatureSet(
        X=X,
        y=np.array([r.emotion for r in recs], dtype=str),
        speakers=np.array([r.speaker for r in recs], dtype=str),
        text_ids=text_ids,
        languages=np.array([r.language for r in recs], dtype=str),
        corpora=np.array([r.corpus for r in recs], dtype=str),
        clip_ids=np.array([r.clip_id for r in recs], dtype=str),
        genders=np.array([r.gender for r in recs], dtype=str),
        backbone=bb.spec.name,
        layers=str(layers),
    )
