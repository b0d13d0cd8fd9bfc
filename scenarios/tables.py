"""The feature table everyone uses: one row per clip, embeddings plus labels and metadata.

``corpus_features("ravdess")`` embeds a corpus with a backbone (default: the offline Whisper
tiny.en, all layers mean-pooled and concatenated) and returns a ``FeatureTable``;
``FeatureTable.from_corpora([...])`` concatenates several, ``FeatureTable.from_clips([...])`` lists
clips without embeddings (for the audio scenarios). The per-layer
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
from dataclasses import dataclass, fields, replace
from typing import Sequence

import numpy as np

from adapt.cache import atomic_write_bytes, cache_dir
from adapt.embedding.pooling import combine_layers

from .corpora import ClipRecord, Corpus, load_corpus

__all__ = ["FeatureTable", "corpus_features", "corpus_layer_features", "clip_paths"]

log = logging.getLogger(__name__)
_TABLE_VERSION = "v1"


@dataclass(frozen=True)
class FeatureTable:
    """One row per clip: embeddings ``X`` float32 ``(N, D)`` with labels and metadata (all length ``N``).

    ``y``: canonical emotion names (str array); ``speakers``, ``languages``, ``corpora``,
    ``clip_ids``, ``genders``: str arrays; ``text_ids``: object array, ``None`` where the corpus has
    no fixed sentences; ``paths``: absolute audio paths (optional). ``backbone`` and ``layers``
    describe how ``X`` was made. A table of clips *without* embeddings (``from_clips``) has a
    ``(N, 1)`` zero placeholder as ``X`` and ``backbone == ""``.
    """

    X: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    text_ids: np.ndarray
    languages: np.ndarray
    corpora: np.ndarray
    clip_ids: np.ndarray
    genders: np.ndarray | None = None
    paths: np.ndarray | None = None
    backbone: str = ""
    layers: str = ""

    def __post_init__(self) -> None:
        if self.X.ndim != 2:
            raise ValueError(f"FeatureTable.X must be (N, D), got shape {self.X.shape}")
        n = self.X.shape[0]
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray) and len(v) != n:
                raise ValueError(f"FeatureTable.{f.name} has {len(v)} rows, X has {n}")

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])

    @property
    def has_embeddings(self) -> bool:
        return bool(self.backbone)

    @classmethod
    def from_records(cls, records: Sequence[ClipRecord], X: np.ndarray | None = None, *, backbone: str = "",
                     layers: str = "") -> "FeatureTable":
        """A table of ``records`` (their metadata) with embeddings ``X`` (``None``: a placeholder)."""
        if not records:
            raise ValueError("a FeatureTable needs at least one clip record")
        text_ids = np.empty(len(records), dtype=object)
        text_ids[:] = [r.text_id for r in records]
        return cls(
            X=np.zeros((len(records), 1), dtype=np.float32) if X is None else X,
            y=np.array([r.emotion for r in records], dtype=str),
            speakers=np.array([r.speaker for r in records], dtype=str),
            text_ids=text_ids,
            languages=np.array([r.language for r in records], dtype=str),
            corpora=np.array([r.corpus for r in records], dtype=str),
            clip_ids=np.array([r.clip_id for r in records], dtype=str),
            genders=np.array([r.gender for r in records], dtype=str),
            paths=np.array([str(r.path) for r in records], dtype=str),
            backbone=backbone,
            layers=layers,
        )

    @classmethod
    def from_corpora(cls, corpora: Sequence[Corpus | str] | Corpus | str, backbone=None, *,
                     progress: bool = False, **options) -> "FeatureTable":
        """The concatenated embedding table of ``corpora`` (``corpus_features`` of each)."""
        if isinstance(corpora, (str, Corpus)):
            corpora = [corpora]
        parts = [corpus_features(c, backbone, progress=progress, **options) for c in corpora]
        return parts[0] if len(parts) == 1 else cls.concat(parts)

    @classmethod
    def from_clips(cls, corpora: Sequence[Corpus | str] | Corpus | str, *, root: str | None = None) -> "FeatureTable":
        """A table of the clips of ``corpora`` *without* embeddings (for audio-only scenarios), rows in
        the order ``from_corpora`` uses, so row indices agree."""
        if isinstance(corpora, (str, Corpus)):
            corpora = [corpora]
        recs = [r for c in corpora for r in (c if isinstance(c, Corpus) else load_corpus(c, root=root)).records]
        if not recs:
            raise ValueError(f"corpora {list(corpora)!r} hold no clips")
        return cls.from_records(recs)

    def subset(self, indices_or_mask: Sequence[int] | np.ndarray) -> "FeatureTable":
        """Rows by integer indices or a boolean mask of length ``N``."""
        sel = np.asarray(indices_or_mask)
        if sel.dtype == bool and sel.shape != (len(self),):
            raise ValueError(f"boolean mask must have shape ({len(self)},), got {sel.shape}")
        if sel.dtype != bool and sel.size and not np.issubdtype(sel.dtype, np.integer):
            raise TypeError(f"subset needs integer indices or a boolean mask, got dtype {sel.dtype}")
        kw = {f.name: (getattr(self, f.name)[sel] if isinstance(getattr(self, f.name), np.ndarray)
                       else getattr(self, f.name)) for f in fields(self)}
        return FeatureTable(**kw)

    def with_X(self, X: np.ndarray) -> "FeatureTable":
        """The same rows with other features ``X`` ``(N, D')`` (e.g. normalized)."""
        return replace(self, X=np.asarray(X, dtype=np.float32))

    @staticmethod
    def concat(parts: Sequence["FeatureTable"]) -> "FeatureTable":
        """Stack tables row-wise (same ``D`` required; e.g. several corpora)."""
        if not parts:
            raise ValueError("FeatureTable.concat needs at least one FeatureTable")
        dims = {p.dim for p in parts}
        if len(dims) != 1:
            raise ValueError(f"cannot concat FeatureTables of different dims {sorted(dims)}")
        kw = {}
        for f in fields(FeatureTable):
            vals = [getattr(p, f.name) for p in parts]
            if f.name in ("backbone", "layers"):
                kw[f.name] = vals[0] if len(set(vals)) == 1 else "+".join(dict.fromkeys(vals))
            elif any(v is None for v in vals):
                kw[f.name] = None
            else:
                kw[f.name] = np.concatenate(vals)
        return FeatureTable(**kw)


def clip_paths(table, *, root: str | None = None) -> np.ndarray:
    """Audio path of every row of ``table``: its ``paths`` column, else its ``clip_ids`` resolved
    through ``load_corpus`` of each corpus present. Raises ``KeyError`` naming a clip id that no
    corpus under the data root holds."""
    if getattr(table, "paths", None) is not None:
        return np.asarray(table.paths, dtype=str)
    if not hasattr(table, "clip_ids") or not hasattr(table, "corpora"):
        raise TypeError(f"need a FeatureTable (paths, or clip_ids and corpora); got {type(table).__name__}")
    where: dict[str, str] = {}
    for corpus in sorted(set(np.asarray(table.corpora, dtype=str).tolist())):
        where.update({r.clip_id: str(r.path) for r in load_corpus(corpus, root=root).records})
    out = []
    for cid in np.asarray(table.clip_ids, dtype=str):
        if cid not in where:
            raise KeyError(f"clip id {cid!r} is in no corpus under the data root")
        out.append(where[cid])
    return np.array(out, dtype=str)


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
    from adapt.embedding import embed_layers, resolve_backbone

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
                    pooling: str = "mean", progress: bool = False, **embed_opts) -> "FeatureTable":
    """The ``FeatureTable`` of a corpus (name, folder or ``Corpus``) under a backbone.

    Arguments:
        backbone: a ``Backbone``, a registry name or ``None`` (offline default).
        layers / weights: layer combination (see ``adapt.embedding.pooling.combine_layers``); ``None`` uses
            ``adapt.embedding.DEFAULT_LAYERS`` ("all": every layer concatenated).
        pooling: ``"mean"`` or ``"meanstd"``.
        progress: progress bar while embedding (first call only).
        embed_opts: passed to ``adapt.embedding.embed_layers`` (``batch_size``, ``num_threads``...).
    """
    from adapt.embedding import DEFAULT_LAYERS, resolve_backbone

    corpus = _as_corpus(corpus_or_name)
    bb = resolve_backbone(backbone)
    layers = DEFAULT_LAYERS if layers is None else layers
    per_layer = corpus_layer_features(corpus, bb, pooling=pooling, progress=progress, **embed_opts)
    X = np.ascontiguousarray(combine_layers(per_layer, layers, weights), dtype=np.float32)
    return FeatureTable.from_records(corpus.records, X, backbone=bb.spec.name, layers=str(layers))
