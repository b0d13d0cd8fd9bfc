"""SQLite back end of the profile store (the default): one file, WAL journal, one connection per thread.

Single statements run in autocommit mode; ``modify`` runs under ``BEGIN IMMEDIATE``, so it takes the
write lock before it reads and concurrent writers never lose an update.

Example:
    >>> store = SQLiteStore(":memory:")
    >>> store.modify("acme", "alice", lambda old: b"state-v1")
    1
    >>> store.get("acme", "alice"), store.list_users("other")
    (b'state-v1', [])
"""
from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import ProfileStoreError
from .base import ProfileStore
from .migrations import apply_migrations

__all__ = ["SQLiteStore"]


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
        self._scrub_pending = False
        self._ckpt_interval = None if self._memory else checkpoint_interval_s
        self._keep = self._connect()  # keeps a memory database alive; also runs migrations
        with self._tx() as cur:
            apply_migrations(cur, blob_type="BLOB", param="?", where=f"profile store {self.url!r}")
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
                    if self._scrub_pending:   # a forget whose WAL truncation was blocked by a reader
                        self._scrub_pending = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] != 0
                    else:
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
            conn.execute("PRAGMA secure_delete=ON")   # deleted profiles are zeroed in the file, not left in free pages
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
    def _connection(self) -> Iterator[sqlite3.Connection]:
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

    @contextmanager
    def _single(self) -> Iterator[sqlite3.Cursor]:
        with self._connection() as conn:   # autocommit: one statement is one transaction
            yield conn.cursor()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        with self._connection() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading: no lost updates
            except sqlite3.OperationalError as exc:
                raise ProfileStoreError(f"profile store {self.url!r} is busy: {exc}") from None
            try:
                yield conn.cursor()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _truncate_wal(self, conn: sqlite3.Connection) -> bool:
        """One ``wal_checkpoint(TRUNCATE)``; ``True`` when the WAL is now empty."""
        try:
            with self._lock:   # not while the background thread checkpoints
                return conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        except sqlite3.Error:
            return False

    def _scrub(self, table: str) -> None:
        """After a delete: checkpoint and truncate the WAL, so no old page image of a forgotten
        profile stays in ``-wal`` (with ``secure_delete`` the main file already holds zeros).
        A reader holding the WAL makes the checkpoint wait: it is retried for about a second,
        then left to the background thread, which retries TRUNCATE at every interval until it
        succeeds (so a forgotten user lingers in ``-wal`` for at most a few intervals)."""
        if self._memory:
            return
        import time

        with self._connection() as conn:
            for attempt in range(20):
                if self._truncate_wal(conn):
                    return
                time.sleep(0.005 * (attempt + 1))   # a reader holds the WAL: retry shortly
        self._scrub_pending = True

    def purge(self) -> dict[str, Any]:
        """``VACUUM`` (rebuilds the file: no free page keeps old data) and an empty WAL."""
        if self._memory:
            return {"backend": "sqlite", "vacuum": False, "wal_truncated": False, "note": "in-memory store"}
        with self._connection() as conn:
            with self._lock:
                conn.execute("VACUUM")
            return {"backend": "sqlite", "vacuum": True, "wal_truncated": self._truncate_wal(conn)}

    def schema_version(self) -> int:
        row = self._one("SELECT value FROM meta WHERE key='schema_version'")
        return int(row[0]) if row else 0

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
