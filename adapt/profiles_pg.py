"""PostgreSQL back end of the profile store (psycopg 3; the ``service`` extra installs it).

Several service replicas can share one PostgreSQL store: read-modify-write runs under
``SELECT ... FOR UPDATE`` in one transaction, migrations under an advisory lock.

Example:
    >>> store = open_store("postgresql://user@127.0.0.1:5432/ser")   # doctest: +SKIP
    >>> store = PostgresStore("postgresql://127.0.0.1/ser", schema="tests_1")   # doctest: +SKIP
"""
from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from .errors import ProfileStoreError
from .profiles import MIGRATIONS, SCHEMA_VERSION, ProfileStore, _check_page, check_tenant, check_user

__all__ = ["PostgresStore"]

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_LOCK = 0x5E3ADA97  # advisory lock id: replicas opening a fresh store migrate one at a time


def _psycopg():
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ProfileStoreError("PostgreSQL stores need psycopg 3: pip install 'ser-adapt[service]'") from None
    return psycopg


class PostgresStore(ProfileStore):
    """Profile store in PostgreSQL.

    Arguments:
        url: ``postgresql://user:password@host:port/dbname``.
        schema: PostgreSQL schema to keep the tables in (created if missing); lets several
            deployments or test runs share a database. Default ``public``.
        connect_timeout_s: how long to wait for the server.
    """

    _param = "%s"

    def __init__(self, url: str, *, schema: str = "public", connect_timeout_s: float = 10.0):
        if not _SCHEMA_RE.match(schema):
            raise ValueError(f"invalid schema name {schema!r}: lower-case letters, digits and _")
        self.url = url
        self._schema = schema
        self._timeout = connect_timeout_s
        self._local = threading.local()
        self._conns: list = []
        self._lock = threading.Lock()
        self._closed = False
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            cur.execute("SELECT value FROM meta WHERE key='schema_version'")
            row = cur.fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise ProfileStoreError(f"profile store has schema version {current}, newer than this "
                                        f"ser-adapt supports ({SCHEMA_VERSION}); upgrade ser-adapt")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[version]:
                    cur.execute(stmt.format(blob="BYTEA"))
            cur.execute("INSERT INTO meta(key, value) VALUES ('schema_version', %s) "
                        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (str(SCHEMA_VERSION),))

    def _connect(self):
        psycopg = _psycopg()
        try:
            conn = psycopg.connect(self.url, connect_timeout=max(1, int(self._timeout)), autocommit=False)
            with conn.cursor() as cur:
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
                cur.execute(f'SET search_path TO "{self._schema}"')
            conn.commit()
        except psycopg.Error as exc:
            raise ProfileStoreError(f"cannot connect to PostgreSQL store: {exc}".strip()) from None
        with self._lock:
            self._conns.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator:
        """A cursor inside one transaction on this thread's connection (commit, or roll back on error)."""
        if self._closed:
            raise ProfileStoreError("PostgreSQL profile store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self._connect()
        psycopg = _psycopg()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except BaseException as exc:
            try:
                conn.rollback()
            except psycopg.Error:
                pass
            if isinstance(exc, psycopg.OperationalError):
                self._local.conn = None  # a broken connection: reconnect next time
                raise ProfileStoreError(f"PostgreSQL store error: {exc}") from None
            raise

    def _one(self, sql: str, params: tuple = ()) -> Optional[tuple]:
        with self._tx() as cur:
            cur.execute(sql, params)
            return cur.fetchone()

    def _all(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._tx() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def _write(self, sql: str, params: tuple = ()) -> int:
        with self._tx() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def schema_version(self) -> int:
        row = self._one("SELECT value FROM meta WHERE key='schema_version'")
        return int(row[0]) if row else 0

    def get(self, tenant: str, user: str) -> Optional[bytes]:
        row = self._one("SELECT state FROM profiles WHERE tenant=%s AND user_id=%s", (check_tenant(tenant), check_user(user)))
        return None if row is None else bytes(row[0])

    def revision(self, tenant: str, user: str) -> int:
        row = self._one("SELECT revision FROM profiles WHERE tenant=%s AND user_id=%s", (check_tenant(tenant), check_user(user)))
        return 0 if row is None else int(row[0])

    def modify(self, tenant: str, user: str, fn: Callable[[Optional[bytes]], bytes]) -> int:
        check_tenant(tenant), check_user(user)
        with self._tx() as cur:
            # make sure a row exists to lock: two first writers of one user must not both insert
            cur.execute("INSERT INTO profiles(tenant, user_id, state, updated_at, revision) VALUES (%s, %s, %s, %s, 0) "
                        "ON CONFLICT (tenant, user_id) DO NOTHING", (tenant, user, b"", time.time()))
            cur.execute("SELECT state, revision FROM profiles WHERE tenant=%s AND user_id=%s FOR UPDATE", (tenant, user))
            state, rev = cur.fetchone()
            old = None if int(rev) == 0 else bytes(state)
            new = fn(old)
            if not isinstance(new, (bytes, bytearray)):
                raise TypeError(f"modify: fn must return bytes, got {type(new).__name__}")
            cur.execute("UPDATE profiles SET state=%s, updated_at=%s, revision=%s WHERE tenant=%s AND user_id=%s",
                        (bytes(new), time.time(), int(rev) + 1, tenant, user))
            return int(rev) + 1

    def delete(self, tenant: str, user: str) -> bool:
        return self._write("DELETE FROM profiles WHERE tenant=%s AND user_id=%s AND revision > 0",
                           (check_tenant(tenant), check_user(user))) > 0

    def list_users(self, tenant: str, *, limit: int = 1000, offset: int = 0) -> list[str]:
        _check_page(limit, offset)
        rows = self._all("SELECT user_id FROM profiles WHERE tenant=%s AND revision > 0 ORDER BY user_id "
                         "LIMIT %s OFFSET %s", (check_tenant(tenant), limit, offset))
        return [r[0] for r in rows]

    def count_users(self, tenant: str) -> int:
        return int(self._one("SELECT COUNT(*) FROM profiles WHERE tenant=%s AND revision > 0", (check_tenant(tenant),))[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._conns:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a dead connection must not raise
                    pass
            self._conns.clear()
