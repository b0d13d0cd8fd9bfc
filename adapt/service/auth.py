"""Authentication of the HTTP service, as FastAPI dependencies.

Every ``/v1`` route needs a tenant API key, sent as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>`` (created with ``ser-adapt keys create --tenant T``, stored only hashed). A key
sees its own tenant's namespace only: routes get a Personalizer view on that tenant
(``Reader`` / ``Writer``), so another tenant's user answers exactly like a user that does not
exist. Missing or unknown key: 401 ``unauthorized``; read-only key on a write: 403 ``forbidden``.

Example (inside ``adapt.service.routes``):
    >>> @router.get("/v1/users/{user_id}")                          # doctest: +SKIP
    ... def get_user(p: Reader, user: UserId): return p.summary(user).to_dict()
"""
from __future__ import annotations

from typing import Annotated, Optional

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..personal import Personalizer
from ..store.keys import ApiKey

__all__ = ["tenant_key", "writer_key", "reader", "writer", "TenantKey", "WriterKey", "Reader", "Writer"]

_bearer = HTTPBearer(auto_error=False, description="Tenant API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Tenant API key")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def tenant_key(request: Request, cred: Annotated[Optional[HTTPAuthorizationCredentials], Depends(_bearer)],
               xkey: Annotated[Optional[str], Depends(_header)]) -> ApiKey:
    """The live key record of the presented key; 401 when there is none or it is unknown/revoked.

    ``adapt.service.guard.Guard`` has already authenticated every ``/v1`` request from its headers
    (before the body was read); its record is reused, so the store is asked once per request."""
    checked = (request.scope.get("state") or {}).get("api_key")
    if checked is not None:
        return checked
    presented = cred.credentials if cred is not None else xkey
    if not presented:
        raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                            headers=_CHALLENGE)
    rec = request.app.state.personalizer.store.authenticate(presented)
    if rec is None:
        raise HTTPException(401, "invalid or revoked API key", headers=_CHALLENGE)
    return rec


TenantKey = Annotated[ApiKey, Depends(tenant_key)]


def writer_key(key: TenantKey) -> ApiKey:
    """A key that may write; 403 for a read-only one."""
    if key.read_only:
        raise HTTPException(403, f"API key {key.key_id} is read-only")
    return key


WriterKey = Annotated[ApiKey, Depends(writer_key)]


def reader(request: Request, key: TenantKey) -> Personalizer:
    """The served Personalizer, seen from the key's tenant."""
    return request.app.state.personalizer.for_tenant(key.tenant)


def writer(request: Request, key: WriterKey) -> Personalizer:
    """Like ``reader``, for routes that change a profile (read-only keys get 403)."""
    return request.app.state.personalizer.for_tenant(key.tenant)


Reader = Annotated[Personalizer, Depends(reader)]
Writer = Annotated[Personalizer, Depends(writer)]
