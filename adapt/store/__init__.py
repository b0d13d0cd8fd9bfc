"""Profile store: per-user personalization state and per-tenant API keys.

Two back ends share one contract (``adapt.store.base.ProfileStore``, every SQL statement written
once):

* ``SQLiteStore`` (default, ``adapt.store.sqlite``): one file, WAL journal, ``BEGIN IMMEDIATE``
  for read-modify-write so concurrent writers never lose an update.
* ``PostgresStore`` (``postgresql://...`` URL, psycopg 3, ``adapt.store.postgres``): for several
  service replicas sharing one store; read-modify-write under ``SELECT ... FOR UPDATE``.

Both carry a schema version and apply pending migrations when opened (``adapt.store.migrations``);
a store written by a newer ser-adapt raises ``ProfileStoreError`` instead of being misread. Id
rules (``check_tenant``, ``check_user``) live in ``adapt.store.ids`` and are shared with the
service and the CLI.

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

import os

from .base import ProfileStore
from .ids import MAX_USER_ID, check_tenant, check_user
from .keys import ApiKey, hash_key
from .migrations import MIGRATIONS, SCHEMA_VERSION
from .sqlite import SQLiteStore

__all__ = [
    "ProfileStore", "SQLiteStore", "open_store", "ApiKey", "SCHEMA_VERSION", "MIGRATIONS",
    "check_tenant", "check_user", "hash_key", "MAX_USER_ID",
]


def open_store(url: str | os.PathLike | ProfileStore, **options) -> ProfileStore:
    """Open a profile store: a file path / ``sqlite:///path`` / ``":memory:"`` for SQLite, or a
    ``postgresql://`` (``postgres://``) URL for PostgreSQL. Options go to the back end's constructor.

    Example:
        >>> open_store(":memory:").schema_version()
        3
    """
    if isinstance(url, ProfileStore):
        return url
    text = os.fspath(url)
    if text.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore as _Pg

        return _Pg(text, **options)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):] or ":memory:"
    elif "://" in text:
        raise ValueError(f"unsupported store URL {text!r}: use a file path, sqlite:///path or postgresql://...")
    return SQLiteStore(text, **options)


def __getattr__(name: str):  # PostgresStore (adapt.store.postgres) needs psycopg, an optional extra
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'adapt.store' has no attribute {name!r}")
