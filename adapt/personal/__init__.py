"""Per-user personalization: the shared global head, small per-user statistics, the façade.

* ``GlobalHead`` (``adapt.personal.global_head``) — the shared, read-only model.
* ``UserState`` (``adapt.personal.user_state``) — what the store keeps per user (statistics only).
* ``Personalizer`` (``adapt.personal.personalizer``) — enroll / predict / update / add_emotion /
  forget / export / import over a backbone, a global head and a profile store.
"""
from __future__ import annotations

from .global_head import GlobalHead
from .personalizer import (Personalizer, PersonalizerConfig, Prediction, UserSummary, default_head_path,
                           default_store_path)
from .user_state import STATE_FORMAT, UserState

__all__ = ["GlobalHead", "UserState", "STATE_FORMAT", "Personalizer", "PersonalizerConfig", "Prediction",
           "UserSummary", "default_head_path", "default_store_path"]
