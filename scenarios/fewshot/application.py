"""The application path under the personalization protocol: the ``Personalizer`` itself, evaluated.

``speaker_fold_rows`` holds out folds of a corpus's speakers, fits a ``GlobalHead`` on every other
speaker (of every corpus in the table), and for each held-out speaker compares, on the same
sentence-disjoint test clips (``personalization_split(shortfall="cap")``): the unenrolled global
prediction (linear layer, and prototypes only), normalization only (the user's statistics but a
huge prior weight, so the prototypes stay global), personal prototypes without the linear
expert, and the fused default, all through the public ``Personalizer`` API from cached
embeddings. It also gathers calibration facts (mean confidence, accuracy, share flagged uncertain).

Example:
    >>> from scenarios.tables import FeatureTable                         # doctest: +SKIP
    >>> table = FeatureTable.from_corpora(["ravdess", "emodb"])             # doctest: +SKIP
    >>> rows = speaker_fold_rows(table, eval_corpora=["emodb"], shots=[2], dims=[256])  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from adapt.errors import TooFewClipsError
from adapt.metrics import unweighted_average_recall as ua
from adapt.personal import GlobalHead, Personalizer, PersonalizerConfig

from ..splits import personalization_split, speaker_kfold

__all__ = ["ApplicationRow", "speaker_fold_rows"]


@dataclass(frozen=True)
class ApplicationRow:
    """Mean UA over the evaluated speakers of one (corpus, head dimension, K) cell."""

    corpus: str
    dim: int
    shots: int
    n_speakers: int
    global_linear: float
    global_prototypes: float
    norm_only: float
    personal_prototypes: float
    fused: float
    mean_confidence: float
    accuracy: float
    uncertain_share: float


def _labels(p: Personalizer, user: str, X: np.ndarray) -> list[str]:
    return [r.label for r in p.predict_embeddings(user, X)]


def speaker_fold_rows(table, *, eval_corpora: Sequence[str], shots: Sequence[int], dims: Sequence[int | None],
                      folds: int = 5, seed: int = 0, C: float = 0.1, verbose: bool = False) -> list[ApplicationRow]:
    """One ``ApplicationRow`` per (corpus of ``eval_corpora``, dim, K); see the module docstring.

    ``table``: a ``FeatureTable`` of all the corpora the global head trains on; ``dims``: the head's
    PCA dimension (``None``: no projection); ``C``: its logistic regression strength.
    """
    rows = []
    spk_all = np.asarray(table.speakers).astype(str)
    y_all = np.asarray(table.y).astype(str)
    for corpus in eval_corpora:
        in_c = np.flatnonzero(np.asarray(table.corpora) == corpus)
        if len(in_c) == 0:
            raise KeyError(f"corpus {corpus!r} is not in the table; it holds {sorted(set(table.corpora.tolist()))}")
        for dim in dims:
            res: dict[int, list] = {k: [] for k in shots}
            cal: dict[int, list] = {k: [] for k in shots}
            for _, test_idx in speaker_kfold(spk_all[in_c], n_splits=folds, seed=seed):
                held = np.unique(spk_all[in_c][test_idx])
                train = ~np.isin(spk_all, held)
                head = GlobalHead.fit(table.X[train], y_all[train], speakers=spk_all[train], linear=True, C=C, dim=dim)
                protos_only = GlobalHead(classes=head.classes, prototypes=head.prototypes, mean=head.mean,
                                         std=head.std, temperature=head.temperature, projection=head.projection)
                fused = Personalizer(None, head, ":memory:")
                glob_protos = Personalizer(None, protos_only, ":memory:")
                norm_only = Personalizer(None, head, ":memory:", config=PersonalizerConfig(prior_weight=1e9))
                protos = Personalizer(None, head, ":memory:", config=PersonalizerConfig(fuse_linear=False))
                for target in held:
                    idx = np.flatnonzero(spk_all == target)
                    for k in shots:
                        try:
                            e, t = personalization_split(spk_all[idx], y_all[idx], target, shots=k,
                                                         text_ids=table.text_ids[idx], shortfall="cap", seed=seed)
                        except TooFewClipsError:
                            continue
                        Xe, ye, Xt, yt = table.X[idx[e]], y_all[idx[e]], table.X[idx[t]], y_all[idx[t]]
                        user = f"{target}-{k}"
                        scores = [ua(yt, _labels(fused, user, Xt)), ua(yt, _labels(glob_protos, user, Xt))]
                        for p in (norm_only, protos, fused):
                            p.enroll_embeddings(user, Xe, ye)
                        scores += [ua(yt, _labels(norm_only, user, Xt)), ua(yt, _labels(protos, user, Xt)),
                                   ua(yt, _labels(fused, user, Xt))]
                        res[k].append(scores)
                        cal[k] += [(x.confidence, x.label == t_, x.uncertain)
                                   for x, t_ in zip(fused.predict_embeddings(user, Xt), yt)]
            for k in shots:
                if res[k]:
                    m = np.mean(res[k], axis=0)
                    c = np.asarray(cal[k], dtype=float)
                    rows.append(ApplicationRow(corpus, int(dim or table.X.shape[1]), int(k), len(res[k]), *map(float, m),
                                               float(c[:, 0].mean()), float(c[:, 1].mean()), float(c[:, 2].mean())))
                    if verbose:
                        print(f"{corpus} dim={dim} K={k} n={len(res[k])} global-linear {m[0]:.3f} global-proto "
                              f"{m[1]:.3f} norm+linear {m[2]:.3f} personal-protos {m[3]:.3f} fused {m[4]:.3f}", flush=True)
    return rows
