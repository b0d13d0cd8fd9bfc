"""Id rules shared by the store, the Personalizer, the CLI and the HTTP service.

A tenant is 1-64 characters of ``[A-Za-z0-9_.-]`` starting with a letter or digit (nothing
else, not even a trailing newline). A user id is 1-128 printable characters without surrounding
spaces, without ``/`` and U+FFFD, and other than ``.`` and ``..`` (``USER_ID_RULE``): exactly the
ids that fit in one segment of a URL path, so a profile created in Python or from the CLI can
always be reached, and forgotten, over HTTP. U+FFFD (the replacement character) is excluded
because a server decodes every invalid UTF-8 byte of a path to it: ``%FF`` and ``%FE`` would
otherwise be two raw ids naming one user. The service does not repeat
these rules as a regex: its ``{user_id}`` path parameter is checked by ``check_user`` and its
OpenAPI schema takes ``MAX_USER_ID`` from here, so every face answers an invalid id with
``InvalidIdError`` (HTTP 400 ``invalid_id``, CLI exit status 2).

Example:
    >>> check_tenant("acme"), check_user("alice")
    ('acme', 'alice')
    >>> check_user("a/b")
    Traceback (most recent call last):
    ...
    adapt.errors.InvalidIdError: invalid user id 'a/b': 1-128 printable characters, no surrounding spaces, no '/' or U+FFFD, not '.' or '..'
"""
from __future__ import annotations

import re

from ..errors import InvalidIdError

__all__ = ["check_tenant", "check_user", "MAX_USER_ID", "MAX_TENANT_ID", "USER_ID_RULE"]

MAX_TENANT_ID = 64
MAX_USER_ID = 128
#: the user-id rule in words (error messages, the service's OpenAPI description)
USER_ID_RULE = (f"1-{MAX_USER_ID} printable characters, no surrounding spaces, no '/' or U+FFFD, "
                "not '.' or '..'")
_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_tenant(tenant: object) -> str:
    """A tenant name: 1-64 of ``[A-Za-z0-9_.-]``, starting alphanumeric; else ``InvalidIdError``."""
    if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
        raise InvalidIdError(f"invalid tenant {tenant!r}: use 1-64 characters [A-Za-z0-9_.-], starting alphanumeric")
    return tenant


def check_user(user: object) -> str:
    """A user id following ``USER_ID_RULE``; else ``InvalidIdError`` (``TypeError`` for a non-string).

    ``/`` and the dot segments are excluded because a URL path cannot carry them inside one
    segment (servers decode ``%2F`` before routing; clients collapse ``.`` and ``..``); U+FFFD
    because invalid UTF-8 in a path decodes to it."""
    if not isinstance(user, str):
        raise TypeError(f"user id must be a string, got {type(user).__name__}")
    if (not 0 < len(user) <= MAX_USER_ID or not user.isprintable() or user.strip() != user or "/" in user
            or "\ufffd" in user or user in (".", "..")):
        raise InvalidIdError(f"invalid user id {user!r}: {USER_ID_RULE}")
    return user
