"""What every head shares: the scikit-learn estimator surface on top of per-class logits.

Every head is a scikit-learn classifier: ``class Head(HeadMixin, ClassifierMixin, BaseEstimator)``.
``HeadMixin`` comes first in the MRO so that its methods win over ``ClassifierMixin``'s. A head
defines ``_logits(X) -> [N, C]`` (per-class scores ordered as ``classes_``), ``classes_`` and
``n_features_in_``; ``HeadMixin`` turns that into

* ``predict(X) -> [N]`` — ``classes_[argmax]``, so labels keep the type the head was fitted on;
* ``predict_proba(X)`` / ``predict_log_proba(X) -> [N, C]`` — softmax / log-softmax of the logits;
* ``decision_function(X)`` — the logits ``[N, C]``; with exactly two classes scikit-learn's binary
  convention, ``[N]`` = ``logit(classes_[1]) - logit(classes_[0])`` (positive means
  ``classes_[1]``). Use ``predict_log_proba`` for per-class scores whatever the class count;
* ``score(X, y)`` — **UA** (unweighted average recall, the field's first metric), not
  scikit-learn's accuracy. ``cross_val_score`` and ``GridSearchCV`` use it by default; pass
  ``scoring="accuracy"`` for accuracy. Every label of ``y`` must be known to the head.

Parameters are plain ``__init__`` arguments (``get_params`` / ``set_params`` / ``clone`` come from
``BaseEstimator``); they are validated in ``fit`` / ``partial_fit`` by ``_validate_params``.
"""
from __future__ import annotations

import numpy as np

from ..stats import softmax
from ..validation import check_known, check_label_kind, check_Xy, require_fitted

__all__ = ["HeadMixin"]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class HeadMixin:
    """``predict`` / ``predict_proba`` / ``decision_function`` / ``score`` (UA) on top of ``_logits``."""

    def _logits(self, X) -> np.ndarray:  # pragma: no cover - every head overrides it
        raise NotImplementedError

    def _validate_params(self) -> None:
        """Check the ``__init__`` arguments (called by ``fit``); raises ValueError / TypeError."""

    def decision_function(self, X) -> np.ndarray:
        """Logits ``[N, C]`` ordered as ``classes_``; ``[N]`` (``classes_[1]`` minus ``classes_[0]``) for 2 classes."""
        z = self._logits(X)
        return z[:, 1] - z[:, 0] if z.shape[1] == 2 else z

    def predict_log_proba(self, X) -> np.ndarray:
        """Log class probabilities ``[N, C]`` ordered as ``classes_`` (log-softmax of the logits)."""
        return _log_softmax(self._logits(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``[N, C]`` ordered as ``classes_`` (softmax of the logits)."""
        return softmax(self._logits(X))

    def predict(self, X) -> np.ndarray:
        """Predicted labels ``[N]``, of the type the head was fitted on."""
        logits = self._logits(X)   # first: it raises NotFittedError on an unfitted head
        return self.classes_[np.argmax(logits, axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """UA (unweighted average recall) on ``X, y``, **not accuracy**; every label must be known.

        ``sample_weight`` is accepted for scikit-learn's signature but must be None (UA weighs
        classes, not clips).
        """
        from ..metrics import unweighted_average_recall

        if sample_weight is not None:
            raise ValueError("score is UA (every class weighs the same); it takes no sample_weight")
        require_fitted(self)
        X, y = check_Xy(X, y, dim=self.n_features_in_, owner=type(self).__name__)
        check_label_kind(y, self.classes_, head=type(self).__name__)
        check_known(y.tolist(), self.classes_.tolist(), head=type(self).__name__)
        return unweighted_average_recall(y, self.predict(X))
