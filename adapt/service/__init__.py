"""HTTP service (FastAPI): per-tenant personalization over the network (``ser-adapt serve``).

``create_app(personalizer, limits=ServiceLimits())`` builds the application; see
``adapt.service.app`` for the routes, authentication and error codes. FastAPI is the optional
``service`` extra, imported when ``create_app`` is called.
"""
from __future__ import annotations

from .app import AUDIO_CONTENT_TYPES, ServiceLimits, create_app

__all__ = ["create_app", "ServiceLimits", "AUDIO_CONTENT_TYPES"]
