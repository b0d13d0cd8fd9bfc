"""HTTP service (FastAPI): per-tenant personalization over the network (``ser-adapt serve``).

Every ``/v1`` route needs an API key (``Authorization: Bearer <key>`` or ``X-API-Key: <key>``),
created with ``ser-adapt keys create --tenant T`` and stored only hashed. A key sees its own
tenant's namespace only: another tenant's user answers exactly like a user that does not exist.

Routes: ``POST /v1/users/{user}/enroll`` (multipart ``files`` + ``labels``), ``POST .../predict``
(``file``), ``POST .../feedback`` (``file`` + ``label``), ``POST .../emotions`` (``name`` +
``files``), ``GET/DELETE /v1/users/{user}``, ``GET /v1/users/{user}/export``, ``GET /v1/users``,
``GET /health``, ``GET /metrics`` (Prometheus text), ``GET /openapi.json``.
Errors are JSON ``{"error": {"code", "message"}}``: 400 bad request, 401 no/unknown key, 403
read-only key on a write, 404 unknown user, 409 emotion exists, 413 too large (request, file or
clip duration), 415 not audio, 422 undecodable audio or malformed request, 503 store unavailable.

Example:
    >>> from adapt import Personalizer
    >>> app = create_app(Personalizer.default(store="profiles.db"))   # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import (AudioError, LabelExistsError, ProfileStoreError, TooFewClipsError, TooLongAudioError,
                      UnknownLabelError, UnknownUserError)
from ..store.keys import ApiKey

__all__ = ["create_app", "ServiceLimits", "AUDIO_CONTENT_TYPES"]

AUDIO_CONTENT_TYPES = (
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac", "audio/x-flac", "audio/mpeg",
    "audio/mp3", "audio/ogg", "audio/webm", "application/octet-stream",
)
USER_PATTERN = r"^[^\s\x00-\x1f\x7f/](?:[^\x00-\x1f\x7f/]*[^\s\x00-\x1f\x7f/])?$"


@dataclass(frozen=True)
class ServiceLimits:
    """Request limits. Bytes are checked before decoding; durations after."""

    max_request_bytes: int = 20 * 1024 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    max_files: int = 64
    content_types: tuple[str, ...] = AUDIO_CONTENT_TYPES

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_file_bytes", "max_files"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")


class _Metrics:
    """Request counters and latency sums per route, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count: dict[tuple[str, str, int], int] = defaultdict(int)
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.count[(method, route, status)] += 1
            self.seconds[(method, route)] += seconds

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP ser_adapt_requests_total HTTP requests by route and status.",
                     "# TYPE ser_adapt_requests_total counter"]
            lines += [f'ser_adapt_requests_total{{method="{m}",route="{r}",status="{s}"}} {n}'
                      for (m, r, s), n in sorted(self.count.items())]
            lines += ["# HELP ser_adapt_request_seconds_sum Total time spent serving requests.",
                      "# TYPE ser_adapt_request_seconds_sum counter"]
            lines += [f'ser_adapt_request_seconds_sum{{method="{m}",route="{r}"}} {v:.6f}'
                      for (m, r), v in sorted(self.seconds.items())]
            lines += ["# TYPE ser_adapt_uptime_seconds gauge", f"ser_adapt_uptime_seconds {time.time() - self.started:.1f}"]
        return "\n".join(lines) + "\n"


def _error(status: int, code: str, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


class _BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes`` (by header, or while streaming)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from fastapi import HTTPException

        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                too_big = False
            if too_big:
                return await _error(413, "request_too_large",
                                    f"request body of {int(length)} bytes exceeds {self.max_bytes} bytes")(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # chunked upload without a Content-Length
                    raise HTTPException(413, f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


def create_app(personalizer, *, limits: ServiceLimits | None = None, title: str = "ser-adapt"):
    """The FastAPI application serving ``personalizer`` (its store also holds the API keys)."""
    try:
        from fastapi import Depends, FastAPI, File, Form, HTTPException, Path, Query, Request, UploadFile
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import PlainTextResponse, Response
        from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ImportError("the HTTP service needs FastAPI: pip install 'ser-adapt[service]'") from None
    from .. import __version__

    limits = limits or ServiceLimits()
    store = personalizer.store
    metrics = _Metrics()
    app = FastAPI(title=title, version=__version__,
                  description="Personalized speech emotion recognition: enroll users with a few labelled clips, "
                              "predict, correct, add emotions, forget. Every /v1 route needs a tenant API key.")
    app.add_middleware(_BodyLimit, max_bytes=limits.max_request_bytes)

    bearer = HTTPBearer(auto_error=False, description="Tenant API key as a bearer token")
    header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="Tenant API key")

    def tenant_key(cred: Optional[HTTPAuthorizationCredentials] = Depends(bearer),
                   xkey: Optional[str] = Depends(header_key)) -> ApiKey:
        presented = cred.credentials if cred is not None else xkey
        if not presented:
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                                headers={"WWW-Authenticate": "Bearer"})
        rec = store.authenticate(presented)
        if rec is None:
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        return rec

    def writer_key(key: ApiKey = Depends(tenant_key)) -> ApiKey:
        if key.read_only:
            raise HTTPException(403, f"API key {key.key_id} is read-only")
        return key

    UserId = Path(..., min_length=1, max_length=128, pattern=USER_PATTERN, description="user id within the tenant")

    def audio_bytes(upload: UploadFile) -> bytes:
        ctype = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
        if ctype not in limits.content_types:
            raise HTTPException(415, f"file {upload.filename!r} has content type {ctype!r}; expected audio "
                                     f"({', '.join(limits.content_types)})")
        data = upload.file.read(limits.max_file_bytes + 1)
        if len(data) > limits.max_file_bytes:
            raise HTTPException(413, f"file {upload.filename!r} exceeds {limits.max_file_bytes} bytes")
        return data

    def many(files: list[UploadFile]) -> list[bytes]:
        if len(files) > limits.max_files:
            raise HTTPException(413, f"{len(files)} files exceed the limit of {limits.max_files} per request")
        return [audio_bytes(f) for f in files]

    def user_view(key: ApiKey):
        return personalizer.for_tenant(key.tenant)

    # -- errors: one JSON shape for all of them ---------------------------------------------
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                 409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "unprocessable"}
        resp = _error(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        return resp

    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.add_exception_handler(StarletteHTTPException, _http)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = ["{}: {}".format(".".join(str(p) for p in e.get("loc", ())), e.get("msg", "")) for e in exc.errors()[:5]]
        return _error(422, "invalid_request", "; ".join(parts) or "invalid request")

    mapping = [(UnknownUserError, 404, "unknown_user"), (LabelExistsError, 409, "emotion_exists"),
               (UnknownLabelError, 400, "unknown_label"), (TooFewClipsError, 400, "too_few_clips"),
               (TooLongAudioError, 413, "clip_too_long"), (AudioError, 422, "bad_audio"),
               (ProfileStoreError, 503, "store_unavailable"), (ValueError, 400, "bad_request")]
    for exc_type, status, code in mapping:
        def handler(request: Request, exc: Exception, status=status, code=code):
            return _error(status, code, str(exc))
        app.add_exception_handler(exc_type, handler)

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            metrics.observe(request.method, _route_of(request), 500, time.perf_counter() - t0)
            raise
        metrics.observe(request.method, _route_of(request), response.status_code, time.perf_counter() - t0)
        return response

    # -- routes -----------------------------------------------------------------------------
    @app.get("/health", tags=["service"], summary="Liveness and model facts (no key needed)")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "emotions": list(personalizer.head.classes),
                "dim": personalizer.head.dim, "backbone": personalizer.head.info.get("backbone")}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse,
             summary="Request counters and latency sums (Prometheus text; no user data)")
    def prometheus() -> str:
        return metrics.render()

    @app.get("/v1/users", tags=["users"], summary="List this tenant's enrolled users")
    def list_users(limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=10**9),
                   key: ApiKey = Depends(tenant_key)) -> dict[str, Any]:
        return {"users": store.list_users(key.tenant, limit=limit, offset=offset),
                "total": store.count_users(key.tenant), "limit": limit, "offset": offset}

    @app.get("/v1/users/{user_id}", tags=["users"], summary="A user's profile summary (counts per emotion)")
    def get_user(user_id: str = UserId, key: ApiKey = Depends(tenant_key)) -> dict[str, Any]:
        return user_view(key).summary(user_id).to_dict()

    @app.get("/v1/users/{user_id}/export", tags=["users"], summary="Export a user's profile as JSON")
    def export_user(user_id: str = UserId, key: ApiKey = Depends(tenant_key)) -> dict[str, Any]:
        return user_view(key).export_user(user_id)

    @app.delete("/v1/users/{user_id}", tags=["users"], status_code=204, response_class=Response, response_model=None,
                summary="Forget a user: every trace of the profile is deleted")
    def delete_user(user_id: str = UserId, key: ApiKey = Depends(writer_key)):
        user_view(key).forget(user_id)
        return Response(status_code=204)

    @app.post("/v1/users/{user_id}/enroll", tags=["personalization"],
              summary="Enroll labelled clips (one label per file, or one label for all)")
    def enroll(user_id: str = UserId, files: list[UploadFile] = File(..., description="audio clips"),
               labels: list[str] = Form(..., description="emotion per clip (repeat the field), or one for all"),
               key: ApiKey = Depends(writer_key)) -> dict[str, Any]:
        clips = many(files)
        if len(labels) == 1 and len(clips) > 1:
            labels = labels * len(clips)
        if len(labels) != len(clips):
            raise HTTPException(400, f"{len(clips)} files but {len(labels)} labels")
        return user_view(key).enroll(user_id, clips, labels).to_dict()

    @app.post("/v1/users/{user_id}/predict", tags=["personalization"],
              summary="Predict the emotion of a clip (global model for users without a profile)")
    def predict(user_id: str = UserId, file: UploadFile = File(..., description="audio clip"),
                key: ApiKey = Depends(tenant_key)) -> dict[str, Any]:
        return {"user": user_id, **user_view(key).predict(user_id, audio_bytes(file)).to_dict()}

    @app.post("/v1/users/{user_id}/feedback", tags=["personalization"],
              summary="Correct a prediction: this clip is this emotion (user must be enrolled)")
    def feedback(user_id: str = UserId, file: UploadFile = File(...), label: str = Form(..., max_length=64),
                 key: ApiKey = Depends(writer_key)) -> dict[str, Any]:
        return user_view(key).update(user_id, audio_bytes(file), label).to_dict()

    @app.post("/v1/users/{user_id}/emotions", tags=["personalization"],
              summary="Add an emotion class for this user only")
    def add_emotion(user_id: str = UserId, name: str = Form(..., min_length=1, max_length=64),
                    files: list[UploadFile] = File(...), key: ApiKey = Depends(writer_key)) -> dict[str, Any]:
        return user_view(key).add_emotion(user_id, name, many(files)).to_dict()

    return app


def _route_of(request) -> str:
    """The route template (``/v1/users/{user_id}``), never the concrete path: no user ids in metrics."""
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")
