"""Calibrated confidence for the global head: temperature scaling and the ``uncertain`` threshold.

A ``GlobalHead``'s LDA scores are log-odds under a Gaussian model that does not hold across
speakers and corpora, so its top probability is not the chance of being right. Two numbers per
*path* fix most of that:

* ``unenrolled`` — users without labelled clips (never seen, observed only, or scored through a
  tenant layer); ``enrolled`` — users with at least one labelled clip. The paths differ in how
  far their class means are from the user's clips, so their logit scales differ too.
* a **temperature** ``T`` per path: ``p = softmax(logits / T)`` (Guo et al. 2017). It does not
  change the top class, only how sure the head says it is. A path's ``T`` may depend on a few
  numbers computed at prediction time from what the head already has (``calibration_features``,
  ``Calibration.terms_*``: ``log T`` linear in them): the clip's distance from the head's classes
  (``log_distance``: clips far from the training data get softer probabilities) and, for an
  enrolled user, how many labelled clips per emotion they gave (``log_shots``). An optional
  per-class bias (vector scaling with a shared scale, ``softmax(logits / T + b)``) can move the
  top class; ``fit_scaling`` fits it all jointly.
* an **uncertain threshold** per path: a prediction whose calibrated confidence is below it is
  flagged ``uncertain``; it is chosen so that the predictions *not* flagged reach ``target``
  accuracy on the held-out training speakers the temperature was fitted on.

Both are fitted on predictions for speakers the head was *not* trained on, all of them training
speakers (cross-fitting: ``scenarios.calibration.calibrate_head``); the numbers are stored with
the head (``GlobalHead.calibration``). A head file without them loads with ``T = 1`` and no
threshold of its own (the ``PersonalizerConfig`` threshold applies), as before; one written before
the feature terms and the bias existed loads with constant temperatures and no bias.

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

__all__ = ["Calibration", "fit_temperature", "fit_scaling", "uncertain_threshold", "calibration_features",
           "PATHS", "FEATURES"]

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


#: the numbers a path's temperature may depend on (``calibration_features``): ``log_distance``
#: (per clip: log of its squared LDA distance from the centre of the head's class means, over the
#: head-space dimension: how far the clip is from what the head was trained on), and per enrolled
#: user ``log_shots`` (log of the labelled clips per labelled emotion) and ``log_separation`` (how
#: far apart the user's own class means are, relative to their sampling noise)
FEATURES = ("log_distance", "log_shots", "log_separation")
#: the temperatures a feature-dependent path is clipped to (as ``fit_temperature``'s bounds)
T_BOUNDS = (0.05, 200.0)


def _check_bias(name: str, v: Any) -> None:
    if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
        raise ValueError(f"Calibration.{name} must map class names to numbers, got {v!r}")
    for k, b in v.items():
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not np.isfinite(b):
            raise ValueError(f"Calibration.{name}[{k!r}] must be a finite number, got {b!r}")


def _check_terms(name: str, v: Any) -> None:
    if not isinstance(v, Mapping):
        raise ValueError(f"Calibration.{name} must map feature names to [centre, slope(, low, high)], got {v!r}")
    for k, cs in v.items():
        if k not in FEATURES:
            raise ValueError(f"Calibration.{name}: unknown feature {k!r}; known: {list(FEATURES)}")
        if (not isinstance(cs, (list, tuple)) or len(cs) not in (2, 4)
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in cs)
                or (len(cs) == 4 and cs[2] > cs[3])):
            raise ValueError(f"Calibration.{name}[{k!r}] must be [centre, slope] or [centre, slope, low, high] "
                             f"(finite, low <= high), got {cs!r}")


@dataclass(frozen=True)
class Calibration:
    """Per-path calibration of a head's logits and ``uncertain`` thresholds (defaults: identity).

    A path's calibrated probabilities are ``softmax(logits / T + b)``: ``T`` the path's
    temperature, ``b`` its per-class bias (``bias_*``: class name -> bias; a class it does not
    name, e.g. a user's own emotion, gets 0; a column outside the row's label set stays
    ``-inf``). ``temperature_unenrolled`` / ``temperature_enrolled``: the base temperatures.
    ``terms_enrolled``: feature name (``FEATURES``) -> ``[centre, slope, low, high]`` (``low`` /
    ``high``: the feature's range in the fitted rows, ``x`` is clipped to it; older files hold
    ``[centre, slope]`` and extrapolate); an enrolled user's
    temperature is ``temperature_enrolled * exp(sum slope * (x - centre))`` for the user's
    features ``x`` (``user_features``), clipped to ``T_BOUNDS``; empty: one temperature for
    every enrolled user. ``uncertain_unenrolled`` / ``uncertain_enrolled``: flag a prediction
    whose (calibrated) confidence is below it; None: the ``PersonalizerConfig.uncertain_below``
    default applies. ``target``: the selective accuracy the thresholds were chosen for.
    ``info``: how it was fitted (scheme, clips, speakers, what was measured on the held-out
    training speakers). A head file written before the bias and terms existed loads with none
    (bias 0, one temperature per path).
    """

    temperature_unenrolled: float = 1.0
    temperature_enrolled: float = 1.0
    uncertain_unenrolled: float | None = None
    uncertain_enrolled: float | None = None
    target: float | None = None
    info: dict = field(default_factory=dict)
    bias_unenrolled: dict = field(default_factory=dict)
    bias_enrolled: dict = field(default_factory=dict)
    terms_unenrolled: dict = field(default_factory=dict)
    terms_enrolled: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_t("temperature_unenrolled", self.temperature_unenrolled)
        _check_t("temperature_enrolled", self.temperature_enrolled)
        _check_u("uncertain_unenrolled", self.uncertain_unenrolled)
        _check_u("uncertain_enrolled", self.uncertain_enrolled)
        _check_u("target", self.target)
        _check_bias("bias_unenrolled", self.bias_unenrolled)
        _check_bias("bias_enrolled", self.bias_enrolled)
        _check_terms("terms_unenrolled", self.terms_unenrolled)
        _check_terms("terms_enrolled", self.terms_enrolled)

    @property
    def fitted(self) -> bool:
        """Whether anything differs from the uncalibrated default."""
        return self != Calibration()

    def terms(self, enrolled: bool) -> dict:
        """The ``{feature: [centre, slope, low, high]}`` of a path's temperature (empty: a constant)."""
        return self.terms_enrolled if enrolled else self.terms_unenrolled

    def temperature(self, enrolled: bool, features: Mapping[str, Any] | None = None):
        """The temperature of a path (``enrolled``: the user has labelled clips): the path's base
        temperature times ``exp(sum slope * (x - centre))`` over its ``terms`` for ``features``
        ``x`` (``calibration_features``: floats or per-row arrays; a feature not given or not
        finite counts as its centre; a term ``[centre, slope, low, high]`` first clips ``x`` to
        the range its fit saw, so a clip nearer the class centre than any fitted one, or a user
        with more shots, is not extrapolated to a near-zero temperature), clipped to ``T_BOUNDS``. A float without terms or features,
        else an array."""
        base = self.temperature_enrolled if enrolled else self.temperature_unenrolled
        terms = self.terms(enrolled)
        if not terms or not features:
            return float(base)
        log_t = np.log(base)
        for name, term in terms.items():
            centre, slope = term[0], term[1]
            x = features.get(name)
            if x is not None:
                x = np.where(np.isfinite(x := np.asarray(x, dtype=np.float64)), x, centre)
                if len(term) == 4:   # never extrapolate beyond the values the fit saw
                    x = np.clip(x, term[2], term[3])
                log_t = log_t + slope * (x - centre)
        T = np.clip(np.exp(log_t), *T_BOUNDS)
        return float(T) if np.ndim(T) == 0 else T

    def bias(self, enrolled: bool, classes) -> np.ndarray:
        """The per-class bias ``[len(classes)]`` of a path (0 for a class it does not name)."""
        b = self.bias_enrolled if enrolled else self.bias_unenrolled
        return np.array([float(b.get(c, 0.0)) for c in classes], dtype=np.float64)

    def apply(self, logits: np.ndarray, classes, enrolled: bool,
              features: Mapping[str, Any] | None = None) -> np.ndarray:
        """Calibrated logits ``logits / T + b`` [N, C] (``-inf`` stays ``-inf``; per-row ``T``
        where ``features`` hold per-row arrays); softmax them for probabilities."""
        L = np.asarray(logits, dtype=np.float64)
        T = np.asarray(self.temperature(enrolled, features), dtype=np.float64)
        T = T.reshape(-1, 1) if T.ndim else T
        return L / T + self.bias(enrolled, classes)[None, :]

    def threshold(self, enrolled: bool) -> float | None:
        """The ``uncertain`` threshold of a path (None: use the application's default)."""
        return self.uncertain_enrolled if enrolled else self.uncertain_unenrolled

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for t in ("terms_unenrolled", "terms_enrolled"):
            d[t] = {k: list(v) for k, v in getattr(self, t).items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Calibration":
        """The calibration stored in a head file; None or {} (an older file): uncalibrated; a
        file without ``bias_*`` / ``terms_*`` (before they existed): none of them."""
        d = dict(d or {})
        for t in ("terms_unenrolled", "terms_enrolled"):
            if t in d:
                d[t] = {k: list(v) for k, v in dict(d[t]).items()}
        return cls(**d)


def calibration_features(head: Any, X: np.ndarray, state: Any = None, tenant: Any = None, *,
                         head_space: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The ``FEATURES`` of clips ``X`` [N, D] of a user (``state``, a ``UserState`` or None)
    under ``head`` (a ``GlobalHead``), from what the prediction already uses (no new per-user
    data is stored), each an array [N] (a user's numbers repeated; NaN where undefined):

    * ``log_distance``: ``log(h' A h / d)`` for the clip in head space ``h`` (standardized as the
      prediction does), relative to the centre of the head's class means, ``A`` the head's LDA
      precision, ``d`` the head-space dimension;
    * enrolled users only: ``log_shots``: log of the mean labelled clips over the user's labelled
      emotions; ``log_separation``: log of the mean, over pairs of the user's labelled emotions
      ``a, b``, of ``(m_a - m_b)' A (m_a - m_b) / ((1/n_a + 1/n_b) d)`` (the user's own class
      means, squared distance over what sampling noise alone would give if the user's spread were
      the head's; NaN with one emotion).

    ``head_space``: ``X`` already in head space (what the prediction computed: ``GlobalHead``
    passes it so a prediction projects its clips once); None: projected here.

    Why hand-written: these are a few lines of the head's own algebra (no library computes them).
    """
    X = np.asarray(X, dtype=np.float32)
    N = len(X)
    counts = np.asarray(state.counts, dtype=np.float64) if state is not None else np.zeros(0)
    idx = np.flatnonzero(counts > 0)
    labelled = len(idx) > 0
    norm = None if head_space is not None and len(idx) < 2 else head.user_normalizer(state, tenant)
    A = np.asarray(head.precision, dtype=np.float64)
    H = head.to_head_space(X, *norm) if head_space is None else head_space
    H = np.asarray(H, dtype=np.float64) - np.asarray(head.means, np.float64).mean(axis=0)
    out = {"log_distance": np.log(np.maximum(np.einsum("nd,de,ne->n", H, A, H) / head.dim, 1e-6))}
    nan = np.full(N, np.nan)
    if not labelled:
        return {**out, "log_shots": nan, "log_separation": nan}
    n = counts[idx]
    out["log_shots"] = np.full(N, float(np.log(n.mean())))
    if len(idx) >= 2:
        M = np.asarray(head.to_head_space(state.sums[idx] / n[:, None], *norm), dtype=np.float64)
        a, b = np.triu_indices(len(idx), k=1)
        V = M[a] - M[b]
        d2 = np.einsum("pd,de,pe->p", V, A, V) / ((1.0 / n[a] + 1.0 / n[b]) * head.dim)
        out["log_separation"] = np.full(N, float(np.log(max(float(d2.mean()), 1e-3))))
    else:
        out["log_separation"] = nan
    return out


def _check_fit_input(logits: np.ndarray, y: np.ndarray, objective: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(logits as float64, y, row indices)`` after the checks ``fit_temperature`` and
    ``fit_scaling`` share (shapes, true columns scorable, a known objective)."""
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
    return L, y, rows


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

    L, y, rows = _check_fit_input(logits, y, objective)
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


def fit_scaling(logits: np.ndarray, y: np.ndarray, *, features: np.ndarray | None = None, bias: bool = False,
                l2: float = 0.01, objective: str = "brier",
                bounds: tuple[float, float] = T_BOUNDS) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Temperature, feature slopes and per-class bias fitted jointly: ``softmax(logits / T_i + b)``
    with ``log T_i = log T + slopes . (features_i - centres)``.

    ``logits`` [N, C] and ``y`` [N] as in ``fit_temperature`` (``-inf`` outside a row's label
    set stays there); ``features`` [N, F] (None: none; ``centres`` are their means); ``bias``:
    fit ``b`` [C] (else 0) with an L2 penalty ``l2 * |b|^2`` added to the loss (Brier or NLL),
    and the bias of a column no row is scored on stays 0. Returns ``(T, slopes [F], centres
    [F], b [C])``. Solved with ``scipy.optimize.minimize`` (L-BFGS-B, numerical gradient: a
    handful of parameters); ``log T`` is kept within ``bounds``. With neither features nor
    bias it is ``fit_temperature`` (up to the optimizer's tolerance).
    """
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    L, y, rows = _check_fit_input(logits, y, objective)
    F = np.zeros((len(L), 0)) if features is None else np.asarray(features, dtype=np.float64).reshape(len(L), -1)
    if not np.isfinite(F).all():
        raise ValueError("features must be finite")
    centres = F.mean(axis=0)
    Fc = F - centres
    n_f, n_c = F.shape[1], L.shape[1]
    scored = np.isfinite(L).any(axis=0)
    onehot = np.zeros_like(L)
    onehot[rows, y] = 1.0
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    T0 = fit_temperature(L, y, objective=objective, bounds=bounds)

    def unpack(th):
        b = np.zeros(n_c)
        if bias:
            b[scored] = th[1 + n_f:]
        return th[0], th[1:1 + n_f], b

    def loss(th):
        log_t, slopes, b = unpack(th)
        Z = L / np.exp(np.clip(log_t + Fc @ slopes, lo, hi))[:, None] + b[None, :]
        logp = log_softmax(Z, axis=1)
        r = -logp[rows, y].mean() if objective == "nll" else np.mean(np.sum((np.exp(logp) - onehot) ** 2, axis=1))
        return float(r + (l2 * np.sum(b ** 2) if bias else 0.0))

    th0 = np.r_[np.log(T0), np.zeros(n_f), np.zeros(int(scored.sum()) if bias else 0)]
    res = minimize(loss, th0, method="L-BFGS-B", bounds=[(lo, hi)] + [(None, None)] * (len(th0) - 1))
    log_t, slopes, b = unpack(res.x if res.fun <= loss(th0) else th0)
    return float(np.exp(log_t)), np.asarray(slopes, dtype=np.float64), centres, b


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
