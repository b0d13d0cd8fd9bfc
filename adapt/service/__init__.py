"""HTTP service (FastAPI): per-tenant personalization over the network (``ser-adapt serve``).

``create_app(personalizer, limits=ServiceLimits())`` builds the application. The package:
``app`` (``create_app``), ``routes`` (the ``APIRouter``; the route list is in its docstring),
``auth`` (API keys, tenants), ``schemas`` (response models), ``errors`` (the error table: which
ser-adapt error is which status and code), ``limits`` (request limits) and ``metrics``
(Prometheus counters). FastAPI is the optional ``service`` extra: importing this package does not
import it, ``create_app`` does.
"""
from __future__ import annotations

from .app import create_app
from .limits import AUDIO_CONTENT_TYPES, ServiceLimits

__all__ = ["create_app", "ServiceLimits", "AUDIO_CONTENT_TYPES"]
