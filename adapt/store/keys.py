"""API keys of the HTTP service: format, hashing, and the public record of a stored key.

A key is ``sa_<12 hex id>_<43 url-safe chars>`` (256 random bits); only its SHA-256 is stored.
Keys are random secrets, not passwords, so a fast hash is enough (no KDF).

Example:
    >>> key, key_id = new_key()
    >>> parse_key(key) == key_id, len(hash_key(key))
    (True, 64)
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Optional

__all__ = ["ApiKey", "hash_key", "new_key", "parse_key"]

_KEY_RE = re.compile(r"sa_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


def hash_key(key: str) -> str:
    """SHA-256 of an API key (hex)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh ``(key, key_id)``."""
    key_id = secrets.token_hex(6)
    return f"sa_{key_id}_{secrets.token_urlsafe(32)}", key_id


def parse_key(key: object) -> Optional[str]:
    """The key id of a well-formed key, else ``None``."""
    if not isinstance(key, str):
        return None
    m = _KEY_RE.fullmatch(key)
    return m.group(1) if m else None


@dataclass(frozen=True)
class ApiKey:
    """A stored key's public facts (the secret itself is never stored).

    ``expires_at`` (Unix time) is ``None`` for a key that never expires; a rotated key keeps
    working until the end of its grace period."""

    key_id: str
    tenant: str
    read_only: bool
    created_at: float
    revoked: bool
    expires_at: Optional[float] = None

    def expired(self, now: Optional[float] = None) -> bool:
        """Whether the key is past its expiry time."""
        import time

        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at

    @property
    def live(self) -> bool:
        """Neither revoked nor expired: the key authenticates."""
        return not self.revoked and not self.expired()
