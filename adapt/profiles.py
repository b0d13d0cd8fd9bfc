"""Profile store: per-user personalization state and per-tenant API keys.

A store keeps, per ``(tenant, user)``, one opaque state blob (embedding-derived statistics written
by ``adapt.personalizer``; never audio) plus a revision counter, and the hashed API keys of each
tenant. Two back ends share one contract:

* ``SQLiteStore`` (default): one file, WAL journal, every write in its own transaction,
  ``BEGIN IMMEDIATE`` for read-modify-write so concurrent writers never lose an update.
* ``PostgresStore`` (``postgresql://...`` URL, psycopg 3): for several service replicas sharing
  one store; read-modify-write under ``SELECT ... FOR UPDATE``.

Both carry a schema version and apply pending migrations when opened (``MIGRATIONS``); a store
written by a newer ser-adapt raises ``ProfileStoreError`` instead of being misread.

Example:
    >>> store = open_store(":memory:")
    >>> store.modify("acme", "alice", lambda old: b"state-v1")
    1
    >>> store.get("acme", "alice")
    b'state-v1'
    >>> store.list_users("acme"), store.list_users("other")
    (['alice'], [])
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from .errors import ProfileStoreError, UnknownUserError

__all__ = [
    "ProfileStore", "SQLiteStore", "open_store", "ApiKey", "SCHEMA_VERSION",
    "check_tenant", "check_user", "hash_key",
]

#: Latest schema; ``MIGRATIONS[v]`` upgrades a store from ``v - 1`` to ``v``.
SCHEMA_VERSION = 2

# v1: profiles only. v2: revision counter per profile and hashed API keys per tenant.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE IF NOT EXISTS profiles (tenant TEXT NOT NULL, user_id TEXT NOT NULL, "
        "state {blob} NOT NULL, updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant, user_id))",
    ],
    2: [
        "ALTER TABLE profiles ADD COLUMN revision BIGINT NOT NULL DEFAULT 1",
        "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
        "key_hash TEXT NOT NULL UNIQUE, read_only INTEGER NOT NULL DEFAULT 0, "
        "created_at DOUBLE PRECISION NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)",
        "CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant)",
    ],
}

_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY_RE = re.compile(r"^sa_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
MAX_USER_ID = 128


def check_tenant(tenant: object) -> str:
    """A tenant name: 1-64 of ``[A-Za-z0-9_.-]``, starting alphanumeric; else ValueError."""
    if not isinstance(tenant, str) or not _TENANT_RE.match(tenant):
        raise ValueError(f"invalid tenant {tenant!r}: use 1-64 characters [A-Za-z0-9_.-], starting alphanumeric")
    return tenant


def check_user(user: object) -> str:
    """A user id: a non-empty string of at most 128 printable characters; else ValueError/TypeError."""
    if not isinstance(user, str):
        raise TypeError(f"user id must be a string, got {type(user).__name__}")
    if not 0 < len(user) <= MAX_USER_ID or not user.isprintable() or user.strip() != user:
        raise ValueError(f"invalid user id {user!r}: 1-{MAX_USER_ID} printable characters, no surrounding spaces")
    return user


def hash_key(key: str) -> str:
    """SHA-256 of an API key. Keys are 256-bit random secrets, so a fast hash is enough (no KDF)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A stored key's public facts (the secret itself is never stored)."""

    key_id: str
    tenant: str
    read_only: bool
    created_at: float
    revoked: bool


class ProfileStore:
    """Contract shared by the back ends (see the module docstring). Thread-safe."""

    url: str

    # -- profiles ---------------------------------------------------------------------------
    def get(self, tenant: str, user: str) -> Optional[bytes]:
        """The user's state blob, or ``None`` when the user has no profile in this tenant."""
        raise NotImplementedError

    def require(self, tenant: str, user: str) -> bytes:
        """Like ``get`` but raises ``UnknownUserError`` for a missing profile."""
        blob = self.get(tenant, user)
        if blob is None:
            raise UnknownUserError(f"no profile for user {user!r}")
        return blob

    def modify(self, tenant: str, user: str, fn: Callable[[Optional[bytes]], bytes]) -> int:
        """Atomically replace the state with ``fn(old_state_or_None)``; returns the new revision.

        ``fn`` runs inside the write transaction (keep it short); if it raises, nothing changes.
        """
        raise NotImplementedError

    def delete(self, tenant: str, user: str) -> bool:
        """Remove every trace of the user in this tenant; ``False`` if there was none."""
        raise NotImplementedError

    def list_users(self, tenant: str, *, limit: int = 1000, offset: int = 0) -> list[str]:
        raise NotImplementedError

    def count_users(self, tenant: str) -> int:
        raise NotImplementedError

    def revision(self, tenant: str, user: str) -> int:
        """The user's revision (number of committed writes), 0 when absent."""
        raise NotImplementedError

    # -- API keys ---------------------------------------------------------------------------
    def create_key(self, tenant: str, *, read_only: bool = False) -> str:
        """Create an API key for ``tenant``; the full key is returned once and stored only hashed."""
        check_tenant(tenant)
        key_id = secrets.token_hex(6)
        key = f"sa_{key_id}_{secrets.token_urlsafe(32)}"
        self._insert_key(key_id, tenant, hash_key(key), read_only)
        return key

    def authenticate(self, key: str) -> Optional[ApiKey]:
        """The live key record for a presented key, or ``None`` (malformed, unknown or revoked)."""
        if not isinstance(key, str) or not _KEY_RE.match(key):
            return None
        rec = self._key_by_hash(hash_key(key))
        return None if rec is None or rec.revoked else rec

    # The key table is the same in every SQL back end; only the DB-API parameter style differs.
    _param = "?"

    def _q(self, sql: str) -> str:
        return sql if self._param == "?" else sql.replace("?", self._param)

    def list_keys(self, tenant: Optional[str] = None) -> list[ApiKey]:
        sql = "SELECT key_id, tenant, read_only, created_at, revoked FROM api_keys"
        rows = (self._all(sql + " ORDER BY created_at") if tenant is None else
                self._all(self._q(sql + " WHERE tenant=? ORDER BY created_at"), (check_tenant(tenant),)))
        return [ApiKey(r[0], r[1], bool(r[2]), float(r[3]), bool(r[4])) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        return self._write(self._q("UPDATE api_keys SET revoked=1 WHERE key_id=? AND revoked=0"), (key_id,)) > 0

    def _insert_key(self, key_id: str, tenant: str, key_hash: str, read_only: bool) -> None:
        self._write(self._q("INSERT INTO api_keys(key_id, tenant, key_hash, read_only, created_at) VALUES (?,?,?,?,?)"),
                    (key_id, tenant, key_hash, int(read_only), time.time()))

    def _key_by_hash(self, key_hash: str) -> Optional[ApiKey]:
        row = self._one(self._q("SELECT key_id, tenant, read_only, created_at, revoked FROM api_keys WHERE key_hash=?"),
                        (key_hash,))
        return None if row is None else ApiKey(row[0], row[1], bool(row[2]), float(row[3]), bool(row[4]))

    # SQL helpers each back end provides
    def _one(self, sql: str, params: tuple = ()) -> Optional[tuple]:
        raise NotImplementedError

    def _all(self, sql: str, params: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    def _write(self, sql: str, params: tuple = ()) -> int:
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------
    def schema_version(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "ProfileStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_page(limit: int, offset: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise ValueError(f"limit must be an integer in [1, 100000], got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, got {offset!r}")


class SQLiteStore(ProfileStore):
    """SQLite back end: WAL journal, one connection per thread, ``BEGIN IMMEDIATE`` writes.

    Arguments:
        path: database file (created with its folder), or ``":memory:"`` (one shared in-memory
            database for this object's threads).
        synchronous: SQLite ``synchronous`` level. ``"NORMAL"`` (default) keeps every committed
            write across a crash of the process; ``"FULL"`` also across power loss, at an fsync
            per commit.
        busy_timeout_s: how long a writer waits for the lock before ``ProfileStoreError``.
        checkpoint_interval_s: copy the WAL into the database from a background thread at this
            interval instead of inside whichever write crosses SQLite's auto-checkpoint size
            (that write took ~5-14 ms instead of ~1 ms). ``None``: SQLite's automatic checkpoints.
    """

    def __init__(self, path: str | os.PathLike, *, synchronous: str = "NORMAL", busy_timeout_s: float = 30.0,
                 checkpoint_interval_s: float | None = 1.0):
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        if checkpoint_interval_s is not None and not checkpoint_interval_s > 0:
            raise ValueError(f"checkpoint_interval_s must be > 0 or None, got {checkpoint_interval_s!r}")
        self._memory = os.fspath(path) == ":memory:"
        if self._memory:
            # a named shared-cache memory database, so every thread's connection sees the same data
            self._target = f"file:ser_adapt_{id(self)}_{secrets.token_hex(4)}?mode=memory&cache=shared"
        else:
            p = Path(path).expanduser()
            p.parent.mkdir(parents=True, exist_ok=True)
            self._target = str(p)
        self.url = os.fspath(path)
        self._sync = synchronous.upper()
        self._timeout = busy_timeout_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._mem_lock = threading.RLock()
        self._closed = False
        self._ckpt_interval = None if self._memory else checkpoint_interval_s
        self._keep = self._connect()  # keeps a memory database alive; also runs migrations
        self._migrate(self._keep)
        self._stop = threading.Event()
        self._ckpt_thread: threading.Thread | None = None
        if self._ckpt_interval is not None:
            self._ckpt_thread = threading.Thread(target=self._checkpointer, name="ser-adapt-wal-checkpoint", daemon=True)
            self._ckpt_thread.start()

    def _checkpointer(self) -> None:
        """Background PASSIVE checkpoints: never blocks readers or writers, keeps the WAL short."""
        conn = self._keep
        while not self._stop.wait(self._ckpt_interval):
            try:
                with self._lock:
                    if self._closed:
                        return
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # busy or closing: the next round retries

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self._target, timeout=self._timeout, isolation_level=None,
                                   check_same_thread=False, uri=self._memory)
            if not self._memory:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise ProfileStoreError(f"could not switch {self._target!r} to WAL (got {mode!r})")
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            if getattr(self, "_ckpt_interval", None) is not None:
                conn.execute("PRAGMA wal_autocheckpoint=0")  # the background thread checkpoints
        except sqlite3.DatabaseError as exc:
            raise ProfileStoreError(f"cannot open profile store {self.url!r}: {exc}") from None
        with self._lock:
            self._conns.append(conn)
        return conn

    @contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; a memory database has one connection behind a lock, because
        shared-cache locking (SQLITE_LOCKED) does not honour the busy timeout."""
        if self._closed:
            raise ProfileStoreError(f"profile store {self.url!r} is closed")
        if self._memory:
            with self._mem_lock:
                yield self._keep
            return
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        yield conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise ProfileStoreError(
                    f"profile store {self.url!r} has schema version {current}, newer than this ser-adapt "
                    f"supports ({SCHEMA_VERSION}); upgrade ser-adapt")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[version]:
                    conn.execute(stmt.format(blob="BLOB"))
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _one(self, sql: str, params: tuple = ()) -> Optional[tuple]:
        with self._use() as conn:
            return conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._use() as conn:
            return conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple = ()) -> int:
        with self._use() as conn:
            return conn.execute(sql, params).rowcount

    def schema_version(self) -> int:
        row = self._one("SELECT value FROM meta WHERE key='schema_version'")
        return int(row[0]) if row else 0

    def get(self, tenant: str, user: str) -> Optional[bytes]:
        row = self._one("SELECT state FROM profiles WHERE tenant=? AND user_id=?", (check_tenant(tenant), check_user(user)))
        return None if row is None else bytes(row[0])

    def revision(self, tenant: str, user: str) -> int:
        row = self._one("SELECT revision FROM profiles WHERE tenant=? AND user_id=?", (check_tenant(tenant), check_user(user)))
        return 0 if row is None else int(row[0])

    def modify(self, tenant: str, user: str, fn: Callable[[Optional[bytes]], bytes]) -> int:
        check_tenant(tenant), check_user(user)
        with self._use() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading: no lost updates
            except sqlite3.OperationalError as exc:
                raise ProfileStoreError(f"profile store {self.url!r} is busy: {exc}") from None
            try:
                row = conn.execute("SELECT state, revision FROM profiles WHERE tenant=? AND user_id=?",
                                   (tenant, user)).fetchone()
                new = fn(None if row is None else bytes(row[0]))
                if not isinstance(new, (bytes, bytearray)):
                    raise TypeError(f"modify: fn must return bytes, got {type(new).__name__}")
                rev = 1 if row is None else int(row[1]) + 1
                conn.execute("INSERT OR REPLACE INTO profiles(tenant, user_id, state, updated_at, revision) "
                             "VALUES (?, ?, ?, ?, ?)", (tenant, user, bytes(new), time.time(), rev))
                conn.execute("COMMIT")
                return rev
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def delete(self, tenant: str, user: str) -> bool:
        return self._write("DELETE FROM profiles WHERE tenant=? AND user_id=?", (check_tenant(tenant), check_user(user))) > 0

    def list_users(self, tenant: str, *, limit: int = 1000, offset: int = 0) -> list[str]:
        _check_page(limit, offset)
        rows = self._all("SELECT user_id FROM profiles WHERE tenant=? ORDER BY user_id LIMIT ? OFFSET ?",
                         (check_tenant(tenant), limit, offset))
        return [r[0] for r in rows]

    def count_users(self, tenant: str) -> int:
        return int(self._one("SELECT COUNT(*) FROM profiles WHERE tenant=?", (check_tenant(tenant),))[0])

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if not self._closed and self._ckpt_interval is not None:
                try:
                    self._keep.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass
            self._closed = True
            for conn in self._conns:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()


def open_store(url: str | os.PathLike, **options) -> ProfileStore:
    """Open a profile store: a file path / ``sqlite:///path`` / ``":memory:"`` for SQLite, or a
    ``postgresql://`` (``postgres://``) URL for PostgreSQL. Options go to the back end's constructor.

    Example:
        >>> open_store(":memory:").schema_version()
        2
    """
    if isinstance(url, ProfileStore):
        return url
    text = os.fspath(url)
    if text.startswith(("postgresql://", "postgres://")):
        from .profiles_pg import PostgresStore as _Pg

        return _Pg(text, **options)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):] or ":memory:"
    elif "://" in text:
        raise ValueError(f"unsupported store URL {text!r}: use a file path, sqlite:///path or postgresql://...")
    return SQLiteStore(text, **options)


def __getattr__(name: str):  # PostgresStore lives in its own module (psycopg is an optional extra)
    if name == "PostgresStore":
        from .profiles_pg import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'adapt.profiles' has no attribute {name!r}")
