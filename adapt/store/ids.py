"""Id rules shared by the store, the Personalizer, the CLI and the HTTP service.

A tenant is 1-64 characters of ``[A-Za-z0-9_.-]`` starting with a letter or digit; a user id is
1-128 printable characters without surrounding spaces. The service's path parameter pattern
(``USER_PATTERN``) is derived from the same rules, so every layer accepts exactly the same ids.

Example:
    >>> check_tenant("acme"), check_user("alice")
    ('acme', 'alice')
"""
from __future__ import annotations

import re

from ..errors import InvalidIdError

__all__ = ["check_tenant", "check_user", "MAX_USER_ID", "MAX_TENANT_ID"]

MAX_TENANT_ID = 64
MAX_USER_ID = 128
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_tenant(tenant: object) -> str:
    """A tenant name: 1-64 of ``[A-Za-z0-9_.-]``, starting alphanumeric; else ``InvalidIdError``."""
    if not isinstance(tenant, str) or not _TENANT_RE.match(tenant):
        raise InvalidIdError(f"invalid tenant {tenant!r}: use 1-64 characters [A-Za-z0-9_.-], starting alphanumeric")
    return tenant


def check_user(user: object) -> str:
    """A user id: a non-empty string of at most 128 printable characters; else ``InvalidIdError``
    (``TypeError`` for a non-string)."""
    if not isinstance(user, str):
        raise TypeError(f"user id must be a string, got {type(user).__name__}")
    if not 0 < len(user) <= MAX_USER_ID or not user.isprintable() or user.strip() != user:
        raise InvalidIdError(f"invalid user id {user!r}: 1-{MAX_USER_ID} printable characters, no surrounding spaces")
    return user
