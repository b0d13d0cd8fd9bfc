"""The HTTP routes, on one ``APIRouter``; ``create_app`` includes it.

Each route reads the served Personalizer and limits from ``request.app.state`` (through the
``auth`` dependencies) and answers a ``schemas`` model. The ``{user_id}`` path parameter is
checked by ``adapt.store.ids.check_user`` (400 ``invalid_id``), the rule the Python API and the CLI
apply; its OpenAPI schema takes ``MAX_USER_ID`` from there.

    GET    /health                         liveness and model facts (no key)
    GET    /metrics                        Prometheus text (no key, no user data)
    GET    /v1/users                       this tenant's users
    GET    /v1/users/{user_id}             profile summary
    DELETE /v1/users/{user_id}             forget (writer key)
    GET    /v1/users/{user_id}/export      the profile as JSON
    POST   /v1/users/{user_id}/import      restore an export (writer key; ?overwrite=true replaces)
    POST   /v1/users/{user_id}/enroll      multipart files + labels (writer key)
    POST   /v1/users/{user_id}/observe     multipart files, no labels (writer key)
    POST   /v1/users/{user_id}/predict     multipart file [+ labels: the label set of this call]
    POST   /v1/users/{user_id}/segments    multipart file (a long recording, up to 10 min) [+ labels, window_s,
                                           hop_s, smoothing]: per-segment emotions with start/end times
    WS     /v1/users/{user_id}/stream      16 kHz PCM in, per-window predictions out (``adapt.service.stream``)
    POST   /v1/users/{user_id}/feedback    multipart file + label (writer key)
    POST   /v1/users/{user_id}/emotions    multipart name + files (writer key)
    PUT    /v1/users/{user_id}/labels      JSON {"labels": [...] | null} (writer key)
    GET    /v1/tenant                      the key's tenant profile summary
    DELETE /v1/tenant                      forget the tenant profile (writer key; ?users=true: all users too)
    POST   /v1/tenant/enroll               multipart files + labels [+ speakers] (writer key)
    GET    /v1/tenant/export               the tenant profile as JSON
    POST   /v1/tenant/import               restore an export (writer key; ?overwrite=true replaces)
    PUT    /v1/tenant/labels               JSON {"labels": [...] | null} (writer key)

Before any route runs, ``adapt.service.guard.Guard`` has authenticated the key from the headers
(401 before the body is read), applied the tenant's rate limit (429) and, for the audio routes,
the admission limit (503 ``overloaded``).

The tenant routes act on the API key's tenant: there is no tenant in the path, so a key cannot
even name another tenant. Label sets are repeated multipart fields (``labels``), like enroll's.
"""
from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response

from .. import __version__
from ..errors import LengthMismatchError
from ..store.ids import MAX_USER_ID, USER_ID_RULE, check_user
from .auth import Reader, TenantKey, Writer
from .limits import read_audio, read_audio_files
from .stream import LONG_MAX_SECONDS, long_segments, segment_models
from .schemas import (ExportedProfile, ExportedTenant, Health, LabelSet, Prediction, ProfileImport, TenantImport,
                      TenantSummary, UserList, UserSummary, error_responses)

__all__ = ["router", "UserId"]

router = APIRouter()


def user_id(user_id: Annotated[str, Path(description=f"user id within the tenant: {USER_ID_RULE}",
                                         json_schema_extra={"minLength": 1, "maxLength": MAX_USER_ID})]) -> str:
    """The path's user id, checked by the store's rule (``InvalidIdError``: 400 ``invalid_id``)."""
    return check_user(user_id)


UserId = Annotated[str, Depends(user_id)]
Files = Annotated[list[UploadFile], File(description="audio clips")]
Labels = Annotated[list[str], Form(description="emotion per clip (repeat the field), or one for all")]


def _per_clip(values: list[str], n: int, what: str) -> list[str]:
    """One value per clip: a single value is repeated for every clip; otherwise n values."""
    if len(values) == 1 and n > 1:
        return values * n
    if len(values) != n:
        raise LengthMismatchError(f"{n} files but {len(values)} {what}")
    return values

_READ = error_responses(400, 401, 404, 422, 500, 503)
_PREDICT = error_responses(400, 401, 404, 413, 415, 422, 500, 503)   # a read that uploads a file
_WRITE = error_responses(400, 401, 403, 404, 409, 413, 415, 422, 500, 503)


@router.get("/health", tags=["service"], response_model=Health, summary="Liveness and model facts (no key needed)")
def health(request: Request) -> dict[str, Any]:
    head = request.app.state.personalizer.head
    return {"status": "ok", "version": __version__, "emotions": list(head.classes), "dim": head.dim,
            "backbone": head.info.get("backbone")}


@router.get("/metrics", tags=["service"], response_class=PlainTextResponse,
            summary="Request counters and latency sums (Prometheus text; no user data)")
def prometheus(request: Request) -> str:
    return request.app.state.metrics.render()


@router.get("/v1/users", tags=["users"], response_model=UserList, responses=_READ,
            summary="List this tenant's enrolled users")
def list_users(key: TenantKey, request: Request, limit: int = Query(100, ge=1, le=1000),
               offset: int = Query(0, ge=0, le=10**9)) -> dict[str, Any]:
    store = request.app.state.personalizer.store
    return {"users": store.list_users(key.tenant, limit=limit, offset=offset),
            "total": store.count_users(key.tenant), "limit": limit, "offset": offset}


@router.get("/v1/users/{user_id}", tags=["users"], response_model=UserSummary, responses=_READ,
            summary="A user's profile summary (counts per emotion)")
def get_user(p: Reader, user: UserId) -> dict[str, Any]:
    return p.summary(user).to_dict()


@router.delete("/v1/users/{user_id}", tags=["users"], status_code=204, response_class=Response, response_model=None,
               responses=_WRITE, summary="Forget a user: every trace of the profile is deleted")
def delete_user(p: Writer, user: UserId) -> Response:
    p.forget(user)
    return Response(status_code=204)


@router.get("/v1/users/{user_id}/export", tags=["users"], response_model=ExportedProfile, responses=_READ,
            summary="Export a user's profile as JSON (POST .../import restores it)")
def export_user(p: Reader, user: UserId) -> dict[str, Any]:
    return p.export_user(user)


@router.post("/v1/users/{user_id}/import", tags=["users"], response_model=UserSummary, responses=_WRITE,
             summary="Restore an exported profile as this user (409 if the user exists, unless overwrite)")
def import_user(p: Writer, user: UserId, profile: ProfileImport,
                overwrite: bool = Query(False, description="replace an existing profile")) -> dict[str, Any]:
    return p.import_user(profile.model_dump(), user=user, overwrite=overwrite).to_dict()


@router.post("/v1/users/{user_id}/enroll", tags=["personalization"], response_model=UserSummary, responses=_WRITE,
             summary="Enroll labelled clips (one label per file, or one label for all)")
def enroll(p: Writer, user: UserId, request: Request, files: Files, labels: Labels) -> dict[str, Any]:
    clips = read_audio_files(files, request.app.state.limits)
    return p.enroll(user, clips, _per_clip(labels, len(clips), "labels")).to_dict()


@router.post("/v1/users/{user_id}/observe", tags=["personalization"], response_model=UserSummary, responses=_WRITE,
             summary="Fold unlabelled clips into the user's normalization statistics (profile created if new)")
def observe(p: Writer, user: UserId, request: Request, files: Files) -> dict[str, Any]:
    return p.observe(user, read_audio_files(files, request.app.state.limits)).to_dict()


@router.post("/v1/users/{user_id}/predict", tags=["personalization"], response_model=Prediction,
             responses=_PREDICT,
             summary="Predict the emotion of a clip (global model for users without a profile)")
def predict(p: Reader, user: UserId, request: Request,
            file: UploadFile = File(..., description="audio clip"),
            labels: Optional[list[str]] = Form(None, description="score only these emotions (repeat the field); "
                                                                 "default: the user's, else the tenant's label set")
            ) -> dict[str, Any]:
    return {"user": user, **p.predict(user, read_audio(file, request.app.state.limits), labels=labels).to_dict()}


@router.post("/v1/users/{user_id}/segments", tags=["personalization"], response_model=segment_models()[1],
             responses=_PREDICT,
             summary="Per-segment emotions of a long recording (speech regions cut into windows; up to 600 s)")
def segments(p: Reader, user: UserId, request: Request,
             file: UploadFile = File(..., description=f"a recording of up to {LONG_MAX_SECONDS:g} s within the "
                                                      f"request-body limit"),
             labels: Optional[list[str]] = Form(None, description="score only these emotions (repeat the field)"),
             window_s: float = Form(1.5, ge=0.5, le=30, description="longest segment; longer speech is cut"),
             # hop_s >= 0.25 s (as for streams): a tiny hop would make one upload cost thousands of windows
             hop_s: float = Form(0.75, ge=0.25, le=30, description="step between the windows of a long region"),
             smoothing: int = Form(1, ge=1, le=15, description="odd: average over this many neighbouring segments")
             ) -> dict[str, Any]:
    return long_segments(p, user, file, request.app.state.limits, labels=labels, window_s=window_s, hop_s=hop_s,
                         smoothing=smoothing, vad=request.app.state.vad)


@router.post("/v1/users/{user_id}/feedback", tags=["personalization"], response_model=UserSummary, responses=_WRITE,
             summary="Correct a prediction: this clip is this emotion (user must be enrolled)")
def feedback(p: Writer, user: UserId, request: Request, file: UploadFile = File(...),
             label: str = Form(..., max_length=64)) -> dict[str, Any]:
    return p.update(user, read_audio(file, request.app.state.limits), label).to_dict()


@router.post("/v1/users/{user_id}/emotions", tags=["personalization"], response_model=UserSummary, responses=_WRITE,
             summary="Add an emotion class for this user only")
def add_emotion(p: Writer, user: UserId, request: Request, files: Files,
                name: str = Form(..., min_length=1, max_length=64)) -> dict[str, Any]:
    return p.add_emotion(user, name, read_audio_files(files, request.app.state.limits)).to_dict()


@router.put("/v1/users/{user_id}/labels", tags=["personalization"], response_model=UserSummary, responses=_WRITE,
            summary="Set the emotions scored for this user (null: back to the tenant's default)")
def set_user_labels(p: Writer, user: UserId, body: LabelSet) -> dict[str, Any]:
    return p.set_labels(user, body.labels).to_dict()


# -- the tenant layer: always the API key's tenant ---------------------------------------------
@router.get("/v1/tenant", tags=["tenant"], response_model=TenantSummary, responses=_READ,
            summary="This tenant's profile summary (404 when it has none)")
def get_tenant(p: Reader) -> dict[str, Any]:
    return p.tenant_summary().to_dict()


@router.delete("/v1/tenant", tags=["tenant"], status_code=204, response_class=Response, response_model=None,
               responses=_WRITE, summary="Forget the tenant profile (?users=true: every user profile too)")
def delete_tenant(p: Writer, users: bool = Query(False, description="also delete every user profile of the tenant")
                  ) -> Response:
    p.forget_tenant(users=users)
    return Response(status_code=204)


@router.post("/v1/tenant/enroll", tags=["tenant"], response_model=TenantSummary, responses=_WRITE,
             summary="Adapt the tenant layer from labelled clips of several of its speakers")
def enroll_tenant(p: Writer, request: Request, files: Files, labels: Labels,
                  speakers: Optional[list[str]] = Form(None, description="speaker id per clip (repeat the field), "
                                                                         "or one for all; used for grouping only, "
                                                                         "never stored"),
                  new_emotions: Optional[list[str]] = Form(None, description="emotions the global model lacks that "
                                                                             "this enrollment creates for the tenant "
                                                                             "(repeat the field); any other unknown "
                                                                             "label is a 400 unknown_label")
                  ) -> dict[str, Any]:
    clips = read_audio_files(files, request.app.state.limits)
    labels = _per_clip(labels, len(clips), "labels")
    spk = None if speakers is None else _per_clip(speakers, len(clips), "speaker ids")
    return p.enroll_tenant(clips, labels, speakers=spk, new_emotions=new_emotions or ()).to_dict()


@router.get("/v1/tenant/export", tags=["tenant"], response_model=ExportedTenant, responses=_READ,
            summary="Export the tenant profile as JSON (POST /v1/tenant/import restores it)")
def export_tenant(p: Reader) -> dict[str, Any]:
    return p.export_tenant()


@router.post("/v1/tenant/import", tags=["tenant"], response_model=TenantSummary, responses=_WRITE,
             summary="Restore an exported tenant profile (409 if the tenant has one, unless overwrite)")
def import_tenant(p: Writer, profile: TenantImport,
                  overwrite: bool = Query(False, description="replace an existing tenant profile")) -> dict[str, Any]:
    return p.import_tenant(profile.model_dump(), overwrite=overwrite).to_dict()


@router.put("/v1/tenant/labels", tags=["tenant"], response_model=TenantSummary, responses=_WRITE,
            summary="Set the tenant's default label set (null: every available emotion)")
def set_tenant_labels(p: Writer, body: LabelSet) -> dict[str, Any]:
    return p.set_tenant_labels(body.labels).to_dict()
