"""The HTTP error contract: one JSON shape and an explicit table from ser-adapt errors to statuses.

Every error answer is ``{"error": {"code": <code>, "message": <text>}}``. A ``SerAdaptError``
is looked up in ``ERROR_TABLE`` by its class and then its bases (the most specific row wins, so
``TooLongAudioError`` is 413 while every other ``AudioError`` is 422). Anything that is not in the
table - a ``SerAdaptError`` without a row (``NotFittedError``, ``BackboneNotAvailableError``,
``EmbeddingShapeError``: the server's own backbone or head misbehaved, HTTP clients never send
embeddings), a plain ``ValueError``, any other exception - is an internal error: logged with its
traceback on the ``adapt.service`` logger and answered ``500 {"error": {"code": "internal",
"message": "internal error"}}``, without details.

Example:
    >>> from adapt.errors import TooLongAudioError, UnreadableAudioError
    >>> status_of(TooLongAudioError("31 s")), status_of(UnreadableAudioError("not audio"))
    ((413, 'clip_too_long'), (422, 'bad_audio'))
    >>> status_of(ValueError("a bug")) is None
    True
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from ..errors import (AudioError, InvalidIdError, InvalidStateError, LabelExistsError, LengthMismatchError,
                      ProfileExistsError, ProfileStoreError, SerAdaptError, TooFewClipsError, TooLongAudioError,
                      TooManyEmotionsError, UnknownLabelError, UnknownTenantError, UnknownUserError)

__all__ = ["ERROR_TABLE", "HTTP_CODES", "status_of", "error_response", "install", "InternalErrors"]

logger = logging.getLogger("adapt.service")

#: ser-adapt error class -> (HTTP status, error code); subclasses inherit their base's row
ERROR_TABLE: dict[type[SerAdaptError], tuple[int, str]] = {
    UnknownUserError: (404, "unknown_user"),          # read, change or delete of a user without a profile
    UnknownTenantError: (404, "unknown_tenant"),      # GET/export/DELETE /v1/tenant without a tenant profile
    LabelExistsError: (409, "emotion_exists"),        # add_emotion under a name the user already has
    ProfileExistsError: (409, "profile_exists"),      # import onto an existing user without overwrite
    TooManyEmotionsError: (409, "too_many_emotions"),  # the user's own emotions are at the cap: a state conflict
    UnknownLabelError: (400, "unknown_label"),        # a label neither global nor the user's own
    TooFewClipsError: (400, "too_few_clips"),
    LengthMismatchError: (400, "length_mismatch"),    # n files but m labels
    InvalidIdError: (400, "invalid_id"),              # breaks adapt.store.ids.USER_ID_RULE
    InvalidStateError: (400, "invalid_state"),        # a malformed or inconsistent exported profile
    TooLongAudioError: (413, "clip_too_long"),        # longer than the service's max_clip_s
    AudioError: (422, "bad_audio"),                   # unreadable, empty, too short, NaN, ...
    ProfileStoreError: (503, "store_unavailable"),    # busy, closed, unreachable, newer schema
}

#: error codes of the framework's own HTTP errors (auth, limits, routing)
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "unprocessable",
              429: "rate_limited", 503: "overloaded"}

INTERNAL = (500, "internal", "internal error")


def status_of(exc: BaseException) -> Optional[tuple[int, str]]:
    """``(status, code)`` of ``exc`` from ``ERROR_TABLE`` (nearest class in its MRO), else ``None``."""
    for cls in type(exc).__mro__:
        row = ERROR_TABLE.get(cls)  # type: ignore[call-overload]
        if row is not None:
            return row
    return None


def error_response(status: int, code: str, message: str, headers: Optional[dict[str, str]] = None):
    """The JSON error answer (``fastapi`` is imported here, not when this module is)."""
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}}, headers=headers)


def _route(scope: dict[str, Any]) -> str:
    return getattr(scope.get("route"), "path", "unmatched")  # the template: no user ids in logs


def _internal(scope: dict[str, Any], exc: BaseException):
    logger.error("internal error in %s %s", scope.get("method"), _route(scope), exc_info=exc)
    return error_response(*INTERNAL)


async def _ser_adapt_error(request, exc: SerAdaptError):
    row = status_of(exc)
    return _internal(request.scope, exc) if row is None else error_response(row[0], row[1], str(exc))


async def _http_error(request, exc):
    detail = str(exc.detail)
    if exc.status_code == 400 and detail.startswith("Too many files"):
        # Starlette's multipart parser stops at ServiceLimits.max_files (set as FastAPI's form
        # limit) with a 400; the documented answer to too many files is 413
        return error_response(413, "too_large", f"more files than the limit of "
                              f"{request.app.state.limits.max_files} per request")
    return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "error"), detail,
                          headers=getattr(exc, "headers", None))


async def _validation_error(request, exc):
    parts = ["{}: {}".format(".".join(str(p) for p in e.get("loc", ())), e.get("msg", "")) for e in exc.errors()[:5]]
    return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")


class InternalErrors:
    """ASGI middleware (the outermost of the app's own): an exception that no handler took is
    logged with its traceback and answered with the generic 500, so nothing about it leaks and the
    server does not log it a second time. A response that already started is left to the server."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:  # noqa: BLE001 - this is the net of last resort
            if started:
                raise
            await _internal(scope, exc)(scope, receive, send)


def install(app) -> None:
    """Register the handlers on ``app`` and add ``InternalErrors`` (call after the other middleware)."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    app.add_exception_handler(SerAdaptError, _ser_adapt_error)
    app.add_exception_handler(HTTPException, _http_error)  # FastAPI's HTTPException is a subclass
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(InternalErrors)
