"""``create_app``: the FastAPI application behind ``ser-adapt serve``.

The application is assembled from the package's parts: ``routes`` (an ``APIRouter``), ``auth``
(API-key dependencies), ``schemas`` (response models), ``errors`` (the error table and handlers),
``limits`` (body and upload limits) and ``metrics`` (Prometheus counters). The served
Personalizer, the limits and the counters live on ``app.state``.

Example:
    >>> from adapt import Personalizer
    >>> app = create_app(Personalizer.default(store="profiles.db"))   # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""
from __future__ import annotations

from .limits import AUDIO_CONTENT_TYPES, BodyLimit, ServiceLimits

__all__ = ["create_app", "ServiceLimits", "AUDIO_CONTENT_TYPES"]

DESCRIPTION = ("Personalized speech emotion recognition: enroll users with a few labelled clips, predict, "
               "correct, add emotions, export / import, forget. Every /v1 route needs a tenant API key.")


def create_app(personalizer, *, limits: ServiceLimits | None = None, title: str = "ser-adapt", stream_limits=None):
    """The FastAPI application serving ``personalizer`` (its store also holds the API keys);
    ``stream_limits``: ``adapt.service.stream.StreamLimits`` of the WebSocket streams."""
    try:
        from fastapi import FastAPI
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ImportError("the HTTP service needs FastAPI: pip install 'ser-adapt[service]'") from None
    from .. import __version__
    from . import errors, metrics, routes

    from starlette.formparsers import MultiPartParser

    from .guard import Guard

    limits = limits or ServiceLimits()
    # Audio is never stored, not even in a temp file: Starlette spools a multipart file part of
    # more than ``spool_max_size`` (1 MiB) to disk, and offers no per-request setting, so the
    # class attribute is raised to the body limit: an upload stays in memory, bounded by it.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limits.max_request_bytes + 1)
    app = FastAPI(title=title, version=__version__, description=DESCRIPTION,
                  form_limits={"max_files": limits.max_files})
    app.state.personalizer = personalizer
    app.state.limits = limits
    app.state.metrics = metrics.Metrics()
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)
    app.add_middleware(Guard, limits=limits, store=personalizer.store, routes=routes.router.routes)   # 401/429/503 before the body
    app.middleware("http")(metrics.observe_requests)
    errors.install(app)  # handlers, and the last-resort 500 as the outermost middleware
    app.include_router(routes.router)
    from ..vad import SileroVAD
    from . import stream

    app.state.stream_limits = stream_limits or stream.StreamLimits()
    app.state.stream_stats = stream.StreamStats()
    app.state.vad = SileroVAD()   # loaded on the first long upload
    app.add_api_websocket_route("/v1/users/{user_id}/stream", stream.stream_endpoint)
    return app
