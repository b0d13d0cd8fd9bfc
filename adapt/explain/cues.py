"""The interpretable pipeline: which eGeMAPS cues (prosody, voice quality, spectrum) speak for an emotion.

The encoder's 1920 dimensions have no names; the 88 eGeMAPSv02 functionals (openSMILE,
``adapt.backbones.classical``) do: pitch level and range, loudness, jitter, shimmer, HNR, formants,
spectral balance, speaking rate. ``CueModel`` is a small classifier on them (standardization +
multinomial logistic regression, scikit-learn), used to *name* the acoustic cues behind a
prediction, not to make it. Two explanations:

* per clip, ``CueModel.attributions``: Shapley values of the cue model's probability of a class
  over the 88 features (``captum.attr.ShapleyValueSampling``; the absent-feature baseline is the
  training mean, i.e. a feature "off" takes the average training clip's value);
* per data set, ``permutation_cues``: ``sklearn.inspection.permutation_importance`` (drop in
  unweighted average recall when a feature's values are shuffled across clips).

``cue_family`` maps a feature name to its family ("pitch", "loudness", "voice quality",
"formants", "spectral balance", "spectrum (MFCC, flux)", "rhythm"). The shipped model
(``adapt/assets/egemaps_cues.npz``) is written by ``python -m benchmarks.explain --write-cue-model``.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3)); y = np.where(X[:, 0] > 0, "angry", "sad")
    >>> m = CueModel.fit(X, y, feature_names=["loudness_sma3_amean", "jitterLocal_sma3nz_amean", "F1frequency_sma3nz_amean"])
    >>> m.classes, m.predict_proba(X[:1]).shape
    (('angry', 'sad'), (1, 2))
    >>> [c[0] for c in m.top_cues(X[0], "angry", k=1)]
    ['loudness_sma3_amean']
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidStateError, UnknownLabelError
from ..stats import STD_FLOOR, softmax

__all__ = ["CueModel", "cue_family", "permutation_cues", "default_cue_model_path", "CUE_FAMILIES"]

_FORMAT = "ser-adapt.CueModel"

#: (substring of an eGeMAPS feature name, family), first match wins
CUE_FAMILIES: tuple[tuple[str, str], ...] = (
    ("F0semitone", "pitch"), ("loudnessPeaks", "rhythm"), ("VoicedSegment", "rhythm"), ("UnvoicedSegment", "rhythm"),
    ("loudness", "loudness"), ("equivalentSoundLevel", "loudness"),
    ("jitter", "voice quality"), ("shimmer", "voice quality"), ("HNR", "voice quality"), ("H1-H2", "voice quality"),
    ("H1-A3", "voice quality"), ("F1", "formants"), ("F2", "formants"), ("F3", "formants"),
    ("alphaRatio", "spectral balance"), ("hammarberg", "spectral balance"), ("slope", "spectral balance"),
    ("mfcc", "spectrum (MFCC, flux)"), ("spectralFlux", "spectrum (MFCC, flux)"),
)


def cue_family(name: str) -> str:
    """The family of an eGeMAPS feature name (``"other"`` if none matches)."""
    for key, family in CUE_FAMILIES:
        if key in name:
            return family
    return "other"


def default_cue_model_path() -> Path:
    """The cue model shipped with the package (``adapt/assets/egemaps_cues.npz``)."""
    return Path(str(resources.files("adapt") / "assets" / "egemaps_cues.npz"))


@dataclass(frozen=True)
class CueModel:
    """Standardized eGeMAPS -> multinomial logistic regression. ``feature_names`` [F], ``classes``
    [C], ``mean``/``scale`` [F], ``coef`` [C, F], ``intercept`` [C]; ``info`` says how it was made."""

    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        F, C = len(self.feature_names), len(self.classes)
        if self.coef.shape != (C, F) or self.mean.shape != (F,) or self.scale.shape != (F,) or self.intercept.shape != (C,):
            raise ValueError(f"CueModel arrays do not fit {C} classes x {F} features: coef {self.coef.shape}, "
                             f"mean {self.mean.shape}, scale {self.scale.shape}, intercept {self.intercept.shape}")

    @classmethod
    def fit(cls, X: np.ndarray, y: Sequence[str], *, feature_names: Sequence[str], C: float = 0.1,
            info: dict | None = None) -> "CueModel":
        """Fit on features ``X`` [N, F] and labels ``y`` [N] (classes balanced; L2 strength ``1/C``)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X = np.asarray(X, np.float64)
        if X.ndim != 2 or X.shape[1] != len(feature_names) or len(X) != len(y):
            raise ValueError(f"X [N, {len(feature_names)}] and y [N] expected, got {X.shape}, {len(y)}")
        sc = StandardScaler().fit(X)
        scale = np.maximum(sc.scale_, STD_FLOOR)
        lr = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit((X - sc.mean_) / scale,
                                                                                np.asarray(y).astype(str))
        coef, icpt = lr.coef_, lr.intercept_
        if len(lr.classes_) == 2:   # scikit-learn keeps one row for two classes: make it symmetric
            coef, icpt = np.vstack([-coef / 2, coef / 2]), np.array([-icpt[0] / 2, icpt[0] / 2])
        return cls(feature_names=tuple(feature_names), classes=tuple(str(c) for c in lr.classes_), mean=sc.mean_,
                   scale=scale, coef=coef, intercept=icpt, info=dict(info or {}))

    def standardize(self, X: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(np.asarray(X, np.float64)) - self.mean) / self.scale

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, C]`` of features ``X`` [N, F] (or one row [F])."""
        return softmax(self.standardize(X) @ self.coef.T + self.intercept, axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes)[np.argmax(self.predict_proba(X), axis=1)]

    def _index(self, target: str) -> int:
        if target not in self.classes:
            raise UnknownLabelError(f"the cue model knows {list(self.classes)}, not {target!r}")
        return self.classes.index(target)

    def attributions(self, x: np.ndarray, target: str, *, n_samples: int = 25, seed: int = 0) -> np.ndarray:
        """Shapley values ``[F]`` of the probability of ``target`` for one clip's features ``x`` [F]
        (captum ``ShapleyValueSampling``, ``n_samples`` feature permutations; they sum to
        ``p(x) - p(training mean)``)."""
        import torch

        from .attribution import require_captum

        attr = require_captum()
        k = self._index(target)
        W = torch.as_tensor(self.coef, dtype=torch.float64)
        b = torch.as_tensor(self.intercept, dtype=torch.float64)
        fn = lambda z: torch.softmax(z @ W.T + b, dim=1)  # noqa: E731  (z: standardized features)
        z = torch.as_tensor(self.standardize(x), dtype=torch.float64)
        torch.manual_seed(seed)
        sv = attr.ShapleyValueSampling(fn).attribute(z, baselines=torch.zeros_like(z), target=k, n_samples=n_samples,
                                                     perturbations_per_eval=z.shape[1] + 1)
        return sv[0].numpy()

    def top_cues(self, x: np.ndarray, target: str, k: int = 5, **kw: Any) -> list[tuple[str, str, float, float]]:
        """The ``k`` features that raise the probability of ``target`` most: ``(name, family,
        z-score of the clip's value against the training clips, Shapley value)``."""
        sv = self.attributions(x, target, **kw)
        z = self.standardize(x)[0]
        order = np.argsort(-sv, kind="stable")[:k]
        return [(self.feature_names[i], cue_family(self.feature_names[i]), float(z[i]), float(sv[i])) for i in order]

    # -- persistence -------------------------------------------------------------------------
    def save(self, path) -> None:
        meta = {"format": _FORMAT, "feature_names": list(self.feature_names), "classes": list(self.classes),
                "info": self.info}
        with open(path, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta)), mean=self.mean, scale=self.scale, coef=self.coef,
                                intercept=self.intercept)

    @classmethod
    def load(cls, path=None) -> "CueModel":
        """Read a saved model (default: the shipped one); ``InvalidStateError`` if it is not one."""
        path = default_cue_model_path() if path is None else path
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != _FORMAT:
                    raise KeyError("format")
                return cls(feature_names=tuple(meta["feature_names"]), classes=tuple(meta["classes"]),
                           mean=z["mean"], scale=z["scale"], coef=z["coef"], intercept=z["intercept"],
                           info=meta.get("info", {}))
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidStateError(f"cannot read a cue model from {path}: {exc}") from None


def permutation_cues(model: CueModel, X: np.ndarray, y: Sequence[str], *, n_repeats: int = 5, seed: int = 0,
                     k: int = 10) -> list[tuple[str, str, float, float]]:
    """The ``k`` features whose shuffling costs ``model`` the most unweighted average recall on
    ``X`` [N, F], ``y`` [N] (``sklearn.inspection.permutation_importance``): ``(name, family,
    mean drop, std)``."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import balanced_accuracy_score

    class _Est:   # the scoring interface permutation_importance calls
        def fit(self, *a):
            return self

        def predict(self, Z):
            return model.predict(Z)

    y = np.asarray(y).astype(str)
    res = permutation_importance(_Est(), np.asarray(X, np.float64), y, n_repeats=n_repeats, random_state=seed,
                                 scoring=lambda est, Z, t: balanced_accuracy_score(t, est.predict(Z)))
    order = np.argsort(-res.importances_mean, kind="stable")[:k]
    return [(model.feature_names[i], cue_family(model.feature_names[i]), float(res.importances_mean[i]),
             float(res.importances_std[i])) for i in order]
