"""What every head shares: scores from ``decision_function``, UA as ``score``.

``HeadMixin`` turns a head that defines ``decision_function`` (logits ``[N, C]`` ordered as
``classes_``), ``classes_`` and ``n_features_in_`` into one with ``predict_proba``, ``predict``
and ``score`` (UA, the field's first metric, rather than scikit-learn's accuracy).
"""
from __future__ import annotations

import numpy as np

from ..stats import softmax
from ..validation import check_known, check_Xy, require_fitted

__all__ = ["HeadMixin"]


class HeadMixin:
    """``predict_proba`` / ``predict`` / ``score`` on top of ``decision_function``."""

    def decision_function(self, X) -> np.ndarray:  # pragma: no cover - every head overrides it
        raise NotImplementedError

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``[N, C]`` ordered as ``classes_`` (softmax of the logits)."""
        return softmax(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        """Predicted labels ``[N]``."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def score(self, X, y) -> float:
        """UA (unweighted average recall) on ``X, y``; every label must be known."""
        from ..metrics import unweighted_average_recall

        require_fitted(self)
        X, y = check_Xy(X, y, dim=self.n_features_in_)
        check_known(y.tolist(), self.classes_.tolist(), head=type(self).__name__)
        return unweighted_average_recall(y, self.predict(X))
