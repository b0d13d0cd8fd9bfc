"""Per-user personalization: the shared global head, tenant and user statistics, the façade.

* ``GlobalHead`` (``adapt.personal.global_head``) — the shared, read-only model (format 2: transfer
  LDA in a speaker-standardized space); ``load_head`` also reads first-release heads
  (``FusedPrototypeHead``, ``adapt.personal.fused_head``).
* ``Calibration`` (``adapt.personal.calibration``) — per-path temperatures and ``uncertain``
  thresholds stored with a ``GlobalHead``.
* ``TenantState`` (``adapt.personal.tenant_state``) — a deployment's layer (statistics only).
* ``UserState`` (``adapt.personal.user_state``) — what the store keeps per user (statistics only).
* ``Personalizer`` (``adapt.personal.personalizer``) — enroll / observe / predict / update /
  add_emotion / label sets / tenant profiles / forget / export / import over a backbone, a global
  head and a profile store.
* ``FeedbackAggregator`` (``adapt.personal.feedback``) — opt-in folding of consenting users'
  statistics into gated, versioned global head versions per tenant.
"""
from __future__ import annotations

from .calibration import Calibration
from .fused_head import FusedPrototypeHead
from .global_head import GlobalHead, Shrinkage, load_head
from .personalizer import (Personalizer, PersonalizerConfig, Prediction, TenantSummary, UserSummary,
                           default_head_path, default_store_path)
from .tenant_state import TenantState
from .user_state import STATE_FORMAT, UserState

__all__ = ["GlobalHead", "Shrinkage", "Calibration", "load_head", "FusedPrototypeHead", "TenantState", "UserState", "STATE_FORMAT",
           "Personalizer", "PersonalizerConfig", "Prediction", "TenantSummary", "UserSummary", "default_head_path",
           "default_store_path"]
