"""Schema versions of the profile store and how to upgrade a store to the latest one.

``MIGRATIONS[v]`` upgrades a store from ``v - 1`` to ``v``; ``apply_migrations`` runs the pending
ones inside the caller's transaction, for any DB-API cursor (SQLite or PostgreSQL). A store
written by a newer ser-adapt raises ``ProfileStoreError`` instead of being misread.
"""
from __future__ import annotations

from typing import Any

from ..errors import ProfileStoreError

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "apply_migrations"]

#: Latest schema; ``MIGRATIONS[v]`` upgrades a store from ``v - 1`` to ``v``.
SCHEMA_VERSION = 4

# v1: profiles only. v2: revision counter per profile and hashed API keys per tenant.
# v3: one tenant-level profile per tenant (the deployment layer between the global head and users).
# v4: API keys may expire (rotation keeps the old key alive for a grace period).
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
    3: [
        "CREATE TABLE IF NOT EXISTS tenant_profiles (tenant TEXT PRIMARY KEY, state {blob} NOT NULL, "
        "updated_at DOUBLE PRECISION NOT NULL, revision BIGINT NOT NULL DEFAULT 0)",
    ],
    4: [
        "ALTER TABLE api_keys ADD COLUMN expires_at DOUBLE PRECISION",
    ],
}


def apply_migrations(cur: Any, *, blob_type: str, param: str, where: str = "the profile store") -> int:
    """Bring the schema behind ``cur`` (a DB-API cursor inside an open transaction) up to date.

    ``blob_type``: the binary column type (``BLOB`` / ``BYTEA``); ``param``: the driver's
    placeholder (``?`` / ``%s``). Returns the version found before migrating.
    """
    cur.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    cur.execute("SELECT value FROM meta WHERE key='schema_version'")
    row = cur.fetchone()
    current = int(row[0]) if row else 0
    if current > SCHEMA_VERSION:
        raise ProfileStoreError(f"{where} has schema version {current}, newer than this ser-adapt supports "
                                f"({SCHEMA_VERSION}); upgrade ser-adapt")
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for stmt in MIGRATIONS[version]:
            cur.execute(stmt.format(blob=blob_type))
    cur.execute("DELETE FROM meta WHERE key='schema_version'")
    cur.execute(f"INSERT INTO meta(key, value) VALUES ('schema_version', {param})", (str(SCHEMA_VERSION),))
    return current
