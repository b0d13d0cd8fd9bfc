"""Profile store contract, run against SQLite and a real PostgreSQL server."""
from __future__ import annotations

import sqlite3
import uuid

import pytest

from adapt.errors import ProfileStoreError, UnknownUserError
from adapt.store import SCHEMA_VERSION, SQLiteStore, hash_key, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(tmp_path / "profiles.db")
    else:
        url = request.getfixturevalue("pg_url")
        s = open_store(url, schema=f"t_{uuid.uuid4().hex[:12]}")
    yield s
    s.close()


def test_roundtrip_revisions_and_delete(store):
    assert store.get("acme", "alice") is None
    assert store.modify("acme", "alice", lambda old: b"one") == 1
    assert store.modify("acme", "alice", lambda old: old + b"+two") == 2
    assert store.get("acme", "alice") == b"one+two"
    assert store.revision("acme", "alice") == 2
    assert store.delete("acme", "alice") is True
    assert store.get("acme", "alice") is None and store.revision("acme", "alice") == 0
    assert store.delete("acme", "alice") is False
    with pytest.raises(UnknownUserError):
        store.require("acme", "alice")


def test_tenant_profile_roundtrip_is_separate_from_users(store):
    assert store.get_tenant("acme") is None
    assert store.modify_tenant("acme", lambda old: b"t1") == 1
    assert store.modify_tenant("acme", lambda old: old + b"+t2") == 2
    assert store.get_tenant("acme") == b"t1+t2" and store.get_tenant("other") is None
    assert store.list_users("acme") == [] and store.count_users("acme") == 0
    with pytest.raises(RuntimeError):
        store.modify_tenant("acme", lambda old: (_ for _ in ()).throw(RuntimeError("boom")))
    assert store.get_tenant("acme") == b"t1+t2"          # a failed write changes nothing
    assert store.delete_tenant("acme") is True and store.get_tenant("acme") is None
    assert store.delete_tenant("acme") is False
    with pytest.raises(ValueError, match="tenant"):
        store.get_tenant("bad tenant!")


def test_failed_modify_changes_nothing(store):
    store.modify("acme", "bob", lambda old: b"kept")

    def boom(old):
        raise RuntimeError("fn failed")

    with pytest.raises(RuntimeError):
        store.modify("acme", "bob", boom)
    with pytest.raises(RuntimeError):
        store.modify("acme", "carol", boom)
    assert store.get("acme", "bob") == b"kept" and store.revision("acme", "bob") == 1
    assert store.get("acme", "carol") is None and store.list_users("acme") == ["bob"]


def test_tenants_are_separate_namespaces(store):
    store.modify("a", "same-name", lambda old: b"A")
    store.modify("b", "same-name", lambda old: b"B")
    store.modify("b", "only-b", lambda old: b"B2")
    assert store.get("a", "same-name") == b"A" and store.get("b", "same-name") == b"B"
    assert store.get("a", "only-b") is None
    assert store.list_users("a") == ["same-name"] and store.list_users("b") == ["only-b", "same-name"]
    assert store.count_users("a") == 1 and store.count_users("b") == 2
    store.delete("a", "same-name")
    assert store.get("b", "same-name") == b"B"


def test_pagination_and_validation(store):
    for i in range(5):
        store.modify("t", f"u{i}", lambda old: b"x")
    assert store.list_users("t", limit=2, offset=1) == ["u1", "u2"]
    for bad_tenant in ["", "a b", "x" * 65, None, "../etc"]:
        with pytest.raises((ValueError, TypeError)):
            store.get(bad_tenant, "u")
    for bad_user in ["", " lead", "x" * 129, "a\nb", 5]:
        with pytest.raises((ValueError, TypeError)):
            store.get("t", bad_user)
    with pytest.raises(ValueError, match="limit"):
        store.list_users("t", limit=0)


def test_api_keys_are_hashed_scoped_and_revocable(store, tmp_path):
    key = store.create_key("acme")
    ro = store.create_key("acme", read_only=True)
    other = store.create_key("globex")
    rec = store.authenticate(key)
    assert rec is not None and rec.tenant == "acme" and not rec.read_only
    assert store.authenticate(ro).read_only and store.authenticate(other).tenant == "globex"
    assert store.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.authenticate("not-a-key") is None and store.authenticate("") is None
    assert {k.key_id for k in store.list_keys("acme")} == {rec.key_id, store.authenticate(ro).key_id}
    assert store.revoke_key(rec.key_id) and store.authenticate(key) is None
    assert not store.revoke_key(rec.key_id)
    assert len(hash_key(key)) == 64 and hash_key(key) != key


def test_sqlite_file_holds_no_plain_key(tmp_path):
    path = tmp_path / "keys.db"
    with open_store(path) as s:
        key = s.create_key("acme")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert key.encode() not in raw and key.split("_", 2)[2].encode() not in raw
    assert hash_key(key).encode() in raw


def test_sqlite_uses_wal_and_current_schema(tmp_path):
    path = tmp_path / "p.db"
    with open_store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_sqlite_migrates_a_version_1_store(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE profiles (tenant TEXT NOT NULL, user_id TEXT NOT NULL, state BLOB NOT NULL,
                               updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant, user_id));
        INSERT INTO profiles VALUES ('acme', 'old-user', X'0102', 0.0);
    """)
    con.commit()
    con.close()
    with open_store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.get("acme", "old-user") == b"\x01\x02" and s.revision("acme", "old-user") == 1
        assert s.modify("acme", "old-user", lambda old: old + b"\x03") == 2
        assert s.authenticate(s.create_key("acme")).tenant == "acme"  # v2 table exists


def test_sqlite_migrates_a_version_2_store_of_the_first_release(tmp_path):
    from adapt.store.keys import hash_key, new_key

    path = tmp_path / "v2.db"
    key, key_id = new_key()
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2');
        CREATE TABLE profiles (tenant TEXT NOT NULL, user_id TEXT NOT NULL, state BLOB NOT NULL,
                               updated_at DOUBLE PRECISION NOT NULL, revision BIGINT NOT NULL DEFAULT 1,
                               PRIMARY KEY (tenant, user_id));
        CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
                               read_only INTEGER NOT NULL DEFAULT 0, created_at DOUBLE PRECISION NOT NULL,
                               revoked INTEGER NOT NULL DEFAULT 0);
        INSERT INTO profiles VALUES ('acme', 'alice', X'0A0B', 0.0, 7);
    """)
    con.execute("INSERT INTO api_keys(key_id, tenant, key_hash, created_at) VALUES (?, 'acme', ?, 0.0)",
                (key_id, hash_key(key)))
    con.commit()
    con.close()
    with open_store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION == 4
        rec = s.authenticate(key)      # a key of the first release still works and never expires
        assert rec is not None and rec.key_id == key_id and rec.expires_at is None
        assert s.get("acme", "alice") == b"\x0a\x0b" and s.revision("acme", "alice") == 7
        assert s.modify_tenant("acme", lambda old: b"tenant") == 1


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    open_store(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(ProfileStoreError, match="newer"):
        open_store(path)


def test_open_store_urls(tmp_path):
    assert isinstance(open_store(f"sqlite:///{tmp_path}/x.db"), SQLiteStore)
    assert isinstance(open_store(":memory:"), SQLiteStore)
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_store("mysql://host/db")
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "y.db", synchronous="SOMETIMES")


def test_closed_store_raises(tmp_path):
    s = open_store(tmp_path / "c.db")
    s.close()
    with pytest.raises(ProfileStoreError, match="closed"):
        s.get("t", "u")


def test_postgres_store_survives_reopen(pg_url):
    schema = f"t_{uuid.uuid4().hex[:12]}"
    s = open_store(pg_url, schema=schema)
    s.modify("acme", "alice", lambda old: b"persisted")
    s.close()
    s2 = open_store(pg_url, schema=schema)
    assert s2.get("acme", "alice") == b"persisted" and s2.schema_version() == SCHEMA_VERSION
    s2.close()
    with pytest.raises(ProfileStoreError):
        open_store("postgresql://nobody@127.0.0.1:1/none", connect_timeout_s=2)


def test_sqlite_background_checkpoint_moves_the_wal_into_the_database(tmp_path):
    import time

    path = tmp_path / "ck.db"
    blob = bytes(range(256)) * 48  # 12 kB, about one profile
    s = open_store(path, checkpoint_interval_s=0.1)
    with s._connection() as conn:  # writers never checkpoint themselves (that cost ~5-14 ms in a write)
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for i in range(200):
        s.modify("t", f"u{i}", lambda old: blob)
    deadline = time.time() + 10
    while path.stat().st_size < 200 * len(blob) and time.time() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size >= 200 * len(blob), "the WAL was never checkpointed into the database file"
    s.close()
    with pytest.raises(ValueError, match="checkpoint_interval_s"):
        open_store(tmp_path / "x.db", checkpoint_interval_s=0)
    manual = open_store(tmp_path / "m.db", checkpoint_interval_s=None)
    with manual._connection() as conn:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] > 0
    manual.close()
