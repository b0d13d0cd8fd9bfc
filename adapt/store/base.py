"""The profile-store contract and every SQL statement of it, written once for all back ends.

A store keeps, per ``(tenant, user)``, one opaque state blob (embedding-derived statistics written
by ``adapt.personal``; never audio) plus a revision counter, and the hashed API keys of each
tenant. A back end supplies a connection per thread, a transaction context (``_tx``) and its
DB-API placeholder (``_param``); the statements below are shared (SQLite >= 3.24 and
PostgreSQL both speak ``INSERT ... ON CONFLICT``):

* read-modify-write (``modify``) makes sure a row exists, locks it (``BEGIN IMMEDIATE`` in SQLite,
  ``SELECT ... FOR UPDATE`` in PostgreSQL), calls ``fn`` inside the transaction and writes the
  result with the next revision, so concurrent writers of one user never lose an update;
* a row with revision 0 is a lock placeholder that only lives inside such a transaction, so every
  read filters ``revision > 0``.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from ..errors import UnknownUserError
from .ids import check_tenant, check_user
from .keys import ApiKey, hash_key, new_key, parse_key

__all__ = ["ProfileStore", "check_page"]


def check_page(limit: int, offset: int) -> None:
    """Validate a ``limit`` / ``offset`` pair for listings."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise ValueError(f"limit must be an integer in [1, 100000], got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, got {offset!r}")


class ProfileStore:
    """Contract shared by the back ends (see the module docstring). Thread-safe."""

    url: str
    #: the DB-API placeholder of the back end's driver (statements are written with ``?``)
    _param = "?"
    #: what locks the profile row inside ``modify`` (PostgreSQL: ``" FOR UPDATE"``)
    _lock_clause = ""

    def _q(self, sql: str) -> str:
        return sql if self._param == "?" else sql.replace("?", self._param)

    # -- what a back end provides ------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """A cursor inside one write transaction (commit on exit, roll back on an exception)."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextmanager
    def _single(self) -> Iterator[Any]:
        """A cursor for one atomic statement (default: a transaction of its own)."""
        with self._tx() as cur:
            yield cur

    def schema_version(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- SQL helpers ------------------------------------------------------------------------
    def _one(self, sql: str, params: tuple = ()) -> Optional[tuple]:
        with self._single() as cur:
            cur.execute(self._q(sql), params)
            return cur.fetchone()

    def _all(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._single() as cur:
            cur.execute(self._q(sql), params)
            return cur.fetchall()

    def _write(self, sql: str, params: tuple = ()) -> int:
        with self._single() as cur:
            cur.execute(self._q(sql), params)
            return cur.rowcount

    # -- profiles ---------------------------------------------------------------------------
    def get(self, tenant: str, user: str) -> Optional[bytes]:
        """The user's state blob, or ``None`` when the user has no profile in this tenant."""
        row = self._one("SELECT state FROM profiles WHERE tenant=? AND user_id=? AND revision > 0",
                        (check_tenant(tenant), check_user(user)))
        return None if row is None else bytes(row[0])

    def require(self, tenant: str, user: str) -> bytes:
        """Like ``get`` but raises ``UnknownUserError`` for a missing profile."""
        blob = self.get(tenant, user)
        if blob is None:
            raise UnknownUserError(f"no profile for user {user!r}")
        return blob

    def revision(self, tenant: str, user: str) -> int:
        """The user's revision (number of committed writes), 0 when absent."""
        row = self._one("SELECT revision FROM profiles WHERE tenant=? AND user_id=? AND revision > 0",
                        (check_tenant(tenant), check_user(user)))
        return 0 if row is None else int(row[0])

    def modify(self, tenant: str, user: str, fn: Callable[[Optional[bytes]], bytes]) -> int:
        """Atomically replace the state with ``fn(old_state_or_None)``; returns the new revision.

        ``fn`` runs inside the write transaction (keep it short); if it raises, nothing changes.
        """
        check_tenant(tenant), check_user(user)
        return self._modify_row("profiles", ("tenant", "user_id"), (tenant, user), fn)

    def _modify_row(self, table: str, key_cols: tuple[str, ...], key: tuple, fn: Callable[[Optional[bytes]], bytes]) -> int:
        """Read-modify-write of one row of ``table`` (``state``, ``updated_at``, ``revision`` columns)."""
        where = " AND ".join(f"{c}=?" for c in key_cols)
        cols = ", ".join(key_cols)
        with self._tx() as cur:
            # a row to lock: two first writers of one key must not both insert
            cur.execute(self._q(f"INSERT INTO {table}({cols}, state, updated_at, revision) "
                                f"VALUES ({', '.join('?' * len(key_cols))}, ?, ?, 0) ON CONFLICT ({cols}) DO NOTHING"),
                        (*key, b"", time.time()))
            cur.execute(self._q(f"SELECT state, revision FROM {table} WHERE {where}" + self._lock_clause), key)
            state, rev = cur.fetchone()
            new = fn(None if int(rev) == 0 else bytes(state))
            if not isinstance(new, (bytes, bytearray)):
                raise TypeError(f"modify: fn must return bytes, got {type(new).__name__}")
            cur.execute(self._q(f"UPDATE {table} SET state=?, updated_at=?, revision=? WHERE {where}"),
                        (bytes(new), time.time(), int(rev) + 1, *key))
            return int(rev) + 1

    def _scrub(self, table: str) -> None:
        """Called after a delete: a back end removes what its files still hold of deleted rows
        (SQLite: truncates the WAL; PostgreSQL: vacuums the table). Default: nothing to do."""

    def delete(self, tenant: str, user: str) -> bool:
        """Remove every trace of the user in this tenant; ``False`` if there was none."""
        gone = self._write("DELETE FROM profiles WHERE tenant=? AND user_id=? AND revision > 0",
                           (check_tenant(tenant), check_user(user))) > 0
        if gone:
            self._scrub("profiles")
        return gone

    def list_users(self, tenant: str, *, limit: int = 1000, offset: int = 0) -> list[str]:
        """This tenant's users, sorted."""
        check_page(limit, offset)
        rows = self._all("SELECT user_id FROM profiles WHERE tenant=? AND revision > 0 ORDER BY user_id "
                         "LIMIT ? OFFSET ?", (check_tenant(tenant), limit, offset))
        return [r[0] for r in rows]

    def count_users(self, tenant: str) -> int:
        return int(self._one("SELECT COUNT(*) FROM profiles WHERE tenant=? AND revision > 0",
                             (check_tenant(tenant),))[0])

    # -- tenant profiles ---------------------------------------------------------------------
    def get_tenant(self, tenant: str) -> Optional[bytes]:
        """The tenant-level state blob (the deployment layer), or ``None``."""
        row = self._one("SELECT state FROM tenant_profiles WHERE tenant=? AND revision > 0", (check_tenant(tenant),))
        return None if row is None else bytes(row[0])

    def modify_tenant(self, tenant: str, fn: Callable[[Optional[bytes]], bytes]) -> int:
        """``modify`` for the tenant-level state; returns its new revision."""
        return self._modify_row("tenant_profiles", ("tenant",), (check_tenant(tenant),), fn)

    def tenant_revision(self, tenant: str) -> int:
        """The tenant profile's revision (number of committed writes), 0 when absent."""
        row = self._one("SELECT revision FROM tenant_profiles WHERE tenant=? AND revision > 0", (check_tenant(tenant),))
        return 0 if row is None else int(row[0])

    def delete_users(self, tenant: str) -> int:
        """Remove every user profile of ``tenant`` (its tenant profile stays); returns how many."""
        n = self._write("DELETE FROM profiles WHERE tenant=? AND revision > 0", (check_tenant(tenant),))
        if n:
            self._scrub("profiles")
        return n

    def delete_tenant(self, tenant: str) -> bool:
        """Remove the tenant-level state (its users' profiles stay); ``False`` if there was none."""
        gone = self._write("DELETE FROM tenant_profiles WHERE tenant=? AND revision > 0", (check_tenant(tenant),)) > 0
        if gone:
            self._scrub("tenant_profiles")
        return gone

    # -- API keys ---------------------------------------------------------------------------
    _KEY_COLS = "key_id, tenant, read_only, created_at, revoked, expires_at"

    @staticmethod
    def _key(row: tuple) -> ApiKey:
        return ApiKey(row[0], row[1], bool(row[2]), float(row[3]), bool(row[4]),
                      None if row[5] is None else float(row[5]))

    @staticmethod
    def _check_seconds(value: Optional[float], what: str) -> Optional[float]:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e10:
            raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
        return float(value)

    def create_key(self, tenant: str, *, read_only: bool = False, expires_in_s: Optional[float] = None) -> str:
        """Create an API key for ``tenant``; the full key is returned once and stored only hashed.

        ``expires_in_s``: the key stops authenticating after this many seconds (``None``: never)."""
        check_tenant(tenant)
        ttl = self._check_seconds(expires_in_s, "expires_in_s")
        key, key_id = new_key()
        now = time.time()
        self._write("INSERT INTO api_keys(key_id, tenant, key_hash, read_only, created_at, expires_at) "
                    "VALUES (?,?,?,?,?,?)",
                    (key_id, tenant, hash_key(key), int(read_only), now, None if ttl is None else now + ttl))
        return key

    def authenticate(self, key: str) -> Optional[ApiKey]:
        """The live key record for a presented key, or ``None`` (malformed, unknown, revoked or expired)."""
        if parse_key(key) is None:
            return None
        row = self._one(f"SELECT {self._KEY_COLS} FROM api_keys WHERE key_hash=?", (hash_key(key),))
        rec = None if row is None else self._key(row)
        return rec if rec is not None and rec.live else None

    def get_key(self, key_id: str) -> Optional[ApiKey]:
        """The record of one key (live or not), or ``None``."""
        row = self._one(f"SELECT {self._KEY_COLS} FROM api_keys WHERE key_id=?", (key_id,))
        return None if row is None else self._key(row)

    def list_keys(self, tenant: Optional[str] = None) -> list[ApiKey]:
        sql = f"SELECT {self._KEY_COLS} FROM api_keys"
        rows = (self._all(sql + " ORDER BY created_at") if tenant is None else
                self._all(sql + " WHERE tenant=? ORDER BY created_at", (check_tenant(tenant),)))
        return [self._key(r) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        return self._write("UPDATE api_keys SET revoked=1 WHERE key_id=? AND revoked=0", (key_id,)) > 0

    def rotate_key(self, key_id: str, *, grace_s: float = 3600.0, expires_in_s: Optional[float] = None) -> str:
        """A new key for the same tenant and rights as ``key_id``; the old key keeps working for
        ``grace_s`` seconds (or until its own, earlier expiry), then stops. Returns the new key.

        ``KeyError`` for an unknown key id; ``ValueError`` for a revoked or expired one."""
        grace = self._check_seconds(grace_s, "grace_s")
        old = self.get_key(key_id)
        if old is None:
            raise KeyError(f"no API key {key_id!r}")
        if not old.live:
            raise ValueError(f"API key {key_id} is {'revoked' if old.revoked else 'expired'}; create a new one")
        new = self.create_key(old.tenant, read_only=old.read_only, expires_in_s=expires_in_s)
        until = time.time() + grace
        if old.expires_at is not None:
            until = min(until, old.expires_at)
        self._write("UPDATE api_keys SET expires_at=? WHERE key_id=?", (until, key_id))
        return new

    # -- forgetting for good ----------------------------------------------------------------
    def purge(self) -> dict[str, Any]:
        """Rewrite the store so no free page, old row version or journal still holds deleted
        profiles (SQLite: ``VACUUM`` and a truncated WAL; PostgreSQL: ``VACUUM FULL`` and a
        checkpoint). Slow on a big store and it locks writers out meanwhile: run it in a quiet
        period (``ser-adapt users purge``). Returns what was done."""
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> "ProfileStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
