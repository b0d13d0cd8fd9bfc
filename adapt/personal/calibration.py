"""Calibrated confidence for the global head: temperature scaling and the ``uncertain`` threshold.

A ``GlobalHead``'s LDA scores are log-odds under a Gaussian model that does not hold across
speakers and corpora, so its top probability is not the chance of being right. Two numbers per
*path* fix most of that:

* ``unenrolled`` — users without labelled clips (never seen, observed only, or scored through a
  tenant layer); ``enrolled`` — users with at least one labelled clip. The paths differ in how
  far their class means are from the user's clips, so their logit scales differ too.
* a **temperature** ``T`` per path: ``p = softmax(logits / T)`` (Guo et al. 2017). It does not
  change the top class, only how sure the head says it is.
* an **uncertain threshold** per path: a prediction whose calibrated confidence is below it is
  flagged ``uncertain``; it is chosen so that the predictions *not* flagged reach ``target``
  accuracy on the held-out training speakers the temperature was fitted on.

Both are fitted on predictions for speakers the head was *not* trained on, all of them training
speakers (cross-fitting: ``scenarios.calibration.calibrate_head``); the numbers are stored with
the head (``GlobalHead.calibration``). A head file without them loads with ``T = 1`` and no
threshold of its own (the ``PersonalizerConfig`` threshold applies), as before.

Example:
    >>> import numpy as np
    >>> logits = np.array([[4.0, 0.0], [3.0, 0.0], [0.0, 2.0], [2.5, 0.0]])
    >>> T = fit_temperature(logits, np.array([0, 1, 1, 0]))
    >>> T > 1        # one confident mistake in four: the scores must be softened
    True
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["Calibration", "fit_temperature", "uncertain_threshold", "PATHS"]

#: the two prediction paths that get their own temperature and threshold
PATHS = ("unenrolled", "enrolled")


def _check_t(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
        raise ValueError(f"Calibration.{name} must be a finite number > 0, got {v!r}")


def _check_u(name: str, v: Any) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise ValueError(f"Calibration.{name} must be None or in [0, 1], got {v!r}")


@dataclass(frozen=True)
class Calibration:
    """Per-path temperatures and ``uncertain`` thresholds of a head (defaults: uncalibrated).

    ``temperature_unenrolled`` / ``temperature_enrolled``: divide the logits by these before the
    softmax. ``uncertain_unenrolled`` / ``uncertain_enrolled``: flag a prediction whose (calibrated)
    confidence is below it; None: the ``PersonalizerConfig.uncertain_below`` default applies.
    ``target``: the selective accuracy the thresholds were chosen for. ``info``: how it was fitted
    (scheme, clips, speakers, what was measured on the held-out training speakers).
    """

    temperature_unenrolled: float = 1.0
    temperature_enrolled: float = 1.0
    uncertain_unenrolled: float | None = None
    uncertain_enrolled: float | None = None
    target: float | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_t("temperature_unenrolled", self.temperature_unenrolled)
        _check_t("temperature_enrolled", self.temperature_enrolled)
        _check_u("uncertain_unenrolled", self.uncertain_unenrolled)
        _check_u("uncertain_enrolled", self.uncertain_enrolled)
        _check_u("target", self.target)

    @property
    def fitted(self) -> bool:
        """Whether anything differs from the uncalibrated default."""
        return self != Calibration()

    def temperature(self, enrolled: bool) -> float:
        """The temperature of a path (``enrolled``: the user has labelled clips)."""
        return float(self.temperature_enrolled if enrolled else self.temperature_unenrolled)

    def threshold(self, enrolled: bool) -> float | None:
        """The ``uncertain`` threshold of a path (None: use the application's default)."""
        return self.uncertain_enrolled if enrolled else self.uncertain_unenrolled

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Calibration":
        """The calibration stored in a head file; None or {} (an older file): uncalibrated."""
        return cls(**dict(d or {}))


def fit_temperature(logits: np.ndarray, y: np.ndarray, *, objective: str = "brier",
                    bounds: tuple[float, float] = (0.05, 200.0)) -> float:
    """The temperature ``T`` minimizing the Brier score (``objective="brier"``, default) or the
    negative log-likelihood (``"nll"``, Guo et al.) of ``softmax(logits / T)``.

    ``logits`` ``[N, C]``: rows scored on fewer classes (a label set) carry ``-inf`` in the
    columns they were not scored on; ``y`` ``[N]``: the true column of each row. Solved with
    ``scipy.optimize.minimize_scalar`` (bounded) over ``log T`` in ``bounds``.

    Why Brier by default: the LDA's logit gaps are heavy-tailed (a few confident mistakes with
    gaps in the hundreds), and the NLL lets those few rows set ``T``: on the cross-fitted
    training speakers of the six-corpus head the NLL chose ``T = 28`` for enrolled users (nearly
    uniform probabilities, ECE 0.5 on held-out EMOVO) where the Brier score chose ``T = 7.9``.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    L = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y)
    if L.ndim != 2 or len(L) == 0 or y.shape != (len(L),):
        raise ValueError(f"logits [N, C] and y [N] expected, got {L.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any() or (y >= L.shape[1]).any():
        raise ValueError("y must hold column indices of logits")
    rows = np.arange(len(L))
    if not np.isfinite(L[rows, y]).all() or np.isnan(L).any() or np.isposinf(L).any():
        raise ValueError("every true column must hold a finite logit (and no logit may be NaN or +inf)")
    if objective not in ("brier", "nll"):
        raise KeyError(f"unknown objective {objective!r}; known: ['brier', 'nll']")
    onehot = np.zeros_like(L)
    onehot[rows, y] = 1.0
    lo, hi = bounds
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")

    def loss(log_t: float) -> float:
        logp = log_softmax(L / np.exp(log_t), axis=1)
        if objective == "nll":
            return float(-logp[rows, y].mean())
        return float(np.mean(np.sum((np.exp(logp) - onehot) ** 2, axis=1)))

    res = minimize_scalar(loss, bounds=(np.log(lo), np.log(hi)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def uncertain_threshold(confidence: np.ndarray, correct: np.ndarray, target: float, *,
                        min_kept: int = 20) -> float:
    """The lowest confidence threshold whose kept predictions (confidence >= it) are at least
    ``target`` accurate, over at least ``min_kept`` kept predictions.

    The lowest such threshold flags the fewest predictions. Where no threshold reaches the
    target with ``min_kept`` predictions kept, returns 1.0 (everything short of certainty is
    flagged): the target is infeasible on these data, which the caller should report.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.ndim != 1 or conf.shape != ok.shape or len(conf) == 0:
        raise ValueError(f"confidence [N] and correct [N] expected, got {conf.shape} and {ok.shape}")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target must be in (0, 1], got {target}")
    order = np.argsort(-conf, kind="stable")
    c, hit = conf[order], ok[order].astype(float)
    k = np.arange(1, len(c) + 1)
    acc = np.cumsum(hit) / k
    # a threshold at c[i] keeps every prediction tied with it: only the last of a tie run counts
    last = np.r_[c[1:] != c[:-1], True]
    good = np.flatnonzero(last & (acc >= target) & (k >= min_kept))
    return float(c[good.max()]) if len(good) else 1.0
