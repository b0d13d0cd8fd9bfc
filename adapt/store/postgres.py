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
from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import ProfileStoreError
from .base import ProfileStore
from .migrations import apply_migrations

__all__ = ["PostgresStore"]

_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
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
    _lock_clause = " FOR UPDATE"

    def __init__(self, url: str, *, schema: str = "public", connect_timeout_s: float = 10.0):
        if not _SCHEMA_RE.fullmatch(schema):
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
            apply_migrations(cur, blob_type="BYTEA", param="%s")

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

    def _autocommit(self, statements: list[str]) -> list[str]:
        """Run maintenance statements that cannot run inside a transaction (VACUUM, CHECKPOINT)
        on a short-lived autocommit connection; returns the ones the server refused (e.g.
        CHECKPOINT without the ``pg_checkpoint`` role)."""
        psycopg = _psycopg()
        refused: list[str] = []
        try:
            with psycopg.connect(self.url, connect_timeout=max(1, int(self._timeout)), autocommit=True) as conn:
                conn.execute(f'SET search_path TO "{self._schema}"')
                for stmt in statements:
                    try:
                        conn.execute(stmt)
                    except psycopg.errors.InsufficientPrivilege:
                        refused.append(stmt)
        except psycopg.OperationalError as exc:
            raise ProfileStoreError(f"PostgreSQL store error: {exc}") from None
        return refused

    def _scrub(self, table: str) -> None:
        """After a delete: a plain ``VACUUM`` of the table removes the dead row versions from the
        heap, its TOAST table and its indexes, so no query, index or later snapshot can reach
        them. VACUUM does not zero the freed bytes: they stay in the pages' free space until
        overwritten, which ``purge`` (VACUUM FULL) ends. The write-ahead log (``pg_wal``) holds
        the records until its segments are overwritten, and so do WAL archives, replicas and
        backups: see docs/personalizer.md, "What forget removes"."""
        self._autocommit([f"VACUUM {table}"])

    def purge(self) -> dict[str, Any]:
        """``VACUUM FULL`` of every profile table (rewritten into new files) and a checkpoint."""
        refused = self._autocommit(["VACUUM FULL profiles", "VACUUM FULL tenant_profiles", "CHECKPOINT"])
        return {"backend": "postgresql", "vacuum": True, "checkpoint": "CHECKPOINT" not in refused}

    def schema_version(self) -> int:
        row = self._one("SELECT value FROM meta WHERE key='schema_version'")
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._conns:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a dead connection must not raise
                    pass
            self._conns.clear()
