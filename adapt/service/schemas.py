"""Pydantic models of the HTTP service's JSON bodies: what every route answers (its
``response_model``, so ``/openapi.json`` documents it), the import body, and the error shape.

The answers mirror the Python API: ``Prediction`` is ``adapt.Prediction.to_dict()`` plus the
``user``, ``UserSummary`` is ``adapt.UserSummary.to_dict()``, ``ExportedProfile`` is
``Personalizer.export_user`` and ``ProfileImport`` accepts it back (``user`` and ``head`` are
optional there: the path names the user, and the profile is checked against the served head).
The tenant layer has the same three: ``TenantSummary`` (``adapt.TenantSummary.to_dict()``),
``ExportedTenant`` (``Personalizer.export_tenant``) and ``TenantImport`` (``tenant`` and ``head``
optional: the API key names the tenant). ``LabelSet`` is the body of both ``PUT .../labels``.

Example:
    >>> Prediction(user="alice", label="sad", probabilities={"sad": 0.8, "angry": 0.2}, confidence=0.8,
    ...            uncertain=False, personalized=True).model_dump()["label"]
    'sad'
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

__all__ = ["Prediction", "UserSummary", "UserList", "Health", "HeadInfo", "UserStateExport", "ExportedProfile",
           "ProfileImport", "LabelSet", "TenantSummary", "TenantStateExport", "ExportedTenant", "TenantImport",
           "ErrorDetail", "ErrorResponse", "error_responses"]


class Prediction(BaseModel):
    """One clip's answer for one user."""

    user: str
    label: str = Field(description="the most probable emotion")
    probabilities: dict[str, float] = Field(description="emotion -> probability (they sum to 1)")
    confidence: float = Field(description="the top probability")
    uncertain: bool = Field(description="confidence below the service's uncertainty threshold")
    personalized: bool = Field(description="False: the user has no profile and got the global model")


class UserSummary(BaseModel):
    """What a user's profile holds."""

    user: str
    counts: dict[str, int] = Field(description="enrolled (labelled) clips per emotion")
    custom_emotions: list[str] = Field(description="emotions this user created (POST .../emotions)")
    clips: int = Field(description="all clips of the profile, labelled or observed")
    revision: int = Field(description="committed writes of this profile so far")
    unlabelled: int = Field(description="clips observed without a label (POST .../observe)")
    labels: Optional[list[str]] = Field(description="the user's label set (PUT .../labels); null: the tenant's default")


class UserList(BaseModel):
    """One page of a tenant's users (sorted)."""

    users: list[str]
    total: int
    limit: int
    offset: int


class Health(BaseModel):
    """Liveness and the served model."""

    status: Literal["ok"]
    version: str
    emotions: list[str]
    dim: int
    backbone: Optional[str]


class HeadInfo(BaseModel):
    """The global head an export was made with."""

    classes: list[str]
    dim: int
    input_dim: int
    backbone: Optional[str]


class UserStateExport(BaseModel):
    """A user's statistics (``UserState.to_json``): per emotion a clip count and an embedding sum,
    plus running moments of all the user's clips. Never audio."""

    format: Literal["ser-adapt.UserState"]
    version: int
    dim: int
    labels: list[str]
    counts: list[float]
    sums: list[list[float]] = Field(description="[len(labels), dim]")
    custom: list[str] = []
    n: int
    mean: list[float] = Field(description="[dim]")
    m2: list[float] = Field(description="[dim]")
    labelset: Optional[list[str]] = Field(None, description="the user's label set (null: the tenant's default)")


class ExportedProfile(BaseModel):
    """``GET /v1/users/{user_id}/export``: the whole profile, accepted back by ``.../import``."""

    user: str
    head: HeadInfo
    state: UserStateExport


class ProfileImport(BaseModel):
    """``POST /v1/users/{user_id}/import`` body: an ``ExportedProfile`` (``user`` is ignored)."""

    user: Optional[str] = None
    head: Optional[HeadInfo] = None
    state: UserStateExport


class LabelSet(BaseModel):
    """``PUT /v1/users/{user_id}/labels`` and ``PUT /v1/tenant/labels`` body: the emotions to score
    from now on (``null``: back to the default - the tenant's for a user, every available one for the
    tenant)."""

    labels: Optional[list[str]] = Field(description="emotion labels, or null to clear the label set")


class TenantSummary(BaseModel):
    """What a tenant's profile (the deployment layer between the global model and its users) holds."""

    tenant: str
    counts: dict[str, int] = Field(description="enrolled clips per emotion, over all the tenant's speakers")
    speakers: int = Field(description="speakers that gave the tenant a normalization prior")
    labels: Optional[list[str]] = Field(description="the tenant's default label set (null: every available emotion)")
    revision: int = Field(description="committed writes of the tenant profile so far")


class TenantStateExport(BaseModel):
    """A tenant's statistics (``TenantState.to_json``): per emotion a clip count and a sum in head
    space, and the sums of its speakers' centres and variances. Never audio, no speaker ids."""

    format: Literal["ser-adapt.TenantState"]
    version: int
    dim: int
    hdim: int
    n_speakers: int
    centre_sum: list[float] = Field(description="[dim]")
    var_sum: list[float] = Field(description="[dim]")
    labels: list[str]
    counts: list[float]
    head_sums: list[list[float]] = Field(description="[len(labels), hdim]")
    labelset: Optional[list[str]] = None


class ExportedTenant(BaseModel):
    """``GET /v1/tenant/export``: the whole tenant profile, accepted back by ``POST /v1/tenant/import``."""

    tenant: str
    head: HeadInfo
    state: TenantStateExport


class TenantImport(BaseModel):
    """``POST /v1/tenant/import`` body: an ``ExportedTenant`` (``tenant`` is ignored: the key names it)."""

    tenant: Optional[str] = None
    head: Optional[HeadInfo] = None
    state: TenantStateExport


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. unknown_user (see docs/personalizer.md)")
    message: str


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


_WHEN = {
    400: "invalid user id, unknown label (also in a label set), too few clips, files/labels/speakers mismatch, "
         "malformed exported state",
    401: "missing, unknown or revoked API key",
    403: "read-only API key on a write",
    404: "no such user in this tenant, or the tenant has no tenant profile",
    409: "the emotion or the profile already exists, or the user has the maximum of own emotions",
    413: "request, file or clip too large",
    415: "a file that is not audio",
    422: "undecodable audio or a malformed request",
    500: "internal error (logged; no details)",
    503: "the profile store is unavailable",
}


def error_responses(*statuses: int) -> dict[int, dict]:
    """OpenAPI ``responses`` for these error statuses (all with the ``ErrorResponse`` body)."""
    return {s: {"model": ErrorResponse, "description": _WHEN[s]} for s in statuses}
