"""Forget means gone: after ``forget`` no byte of the user id or of their state is left in any
file of the store (SQLite: the database, its WAL and shared-memory files; PostgreSQL: the
table's heap, TOAST and index files), and ``purge`` rewrites the store."""
from __future__ import annotations

import glob
import os
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from adapt.personal import Personalizer
from adapt.store import open_store
from tests.helpers.personal import small_model

USER = "user-7f3a9c-unique"


def _enroll_and_forget(p: Personalizer, *, others: int = 30, files=None) -> list[bytes]:
    """Enroll ``USER`` (and some other users who stay), forget ``USER``; the needles to look for.

    ``files``: a function listing the store's files, to check that the needles are there before
    the forget (so the scans after it can fail)."""
    emb, head = small_model()
    rng = np.random.default_rng(7)
    labels = list(head.classes[:3]) * 2
    for i in range(others):
        p.enroll_embeddings(f"stays-{i:03d}", rng.normal(0, 1, (len(labels), head.input_dim)), labels)
    X = rng.normal(3.0, 2.0, (len(labels), head.input_dim)).astype(np.float32)
    p.enroll_embeddings(USER, X, labels)
    p.update_embeddings(USER, X[0] * 1.5, labels[0])          # a second version of the row
    blob = p.store.get(p.config.tenant, USER)
    # marker values of the state: the user's float32 moments (the blob's tail) and a class mean
    # (the float16 means start after the magic, the header length and the JSON header)
    start = 8 + int.from_bytes(blob[4:8], "little")
    needles = [USER.encode(), blob[-64:-32], blob[start + 32:start + 64]]
    assert all(len(n) == 32 for n in needles[1:]) and len(set(needles)) == 3
    if files is not None:
        before = _hits(files(), needles)
        assert sorted({i for found in before.values() for i in found}) == [0, 1, 2], before
    p.forget(USER)
    assert not p.has_user(USER) and p.has_user("stays-000")
    return needles


def _hits(paths, needles) -> dict[str, list[int]]:
    out = {}
    for path in paths:
        data = Path(path).read_bytes()
        found = [i for i, n in enumerate(needles) if n in data]
        if found:
            out[os.path.basename(path)] = found
    return out


def test_sqlite_forget_leaves_no_byte_of_the_user_in_any_file(tmp_path):
    emb, head = small_model()
    p = Personalizer(emb, head, tmp_path / "store" / "profiles.db")
    needles = _enroll_and_forget(p, files=lambda: sorted(glob.glob(str(tmp_path / "store" / "*"))))
    files = sorted(glob.glob(str(tmp_path / "store" / "*")))
    assert any(f.endswith("-wal") for f in files)       # the WAL exists and is scanned too
    assert _hits(files, needles) == {}
    p.store.close()
    assert _hits(sorted(glob.glob(str(tmp_path / "store" / "*"))), needles) == {}


def test_sqlite_forget_with_a_reader_holding_the_wal_is_scrubbed_by_the_background_thread(tmp_path):
    """A reader inside a transaction blocks the WAL truncation; it must not block it for long."""
    import sqlite3

    emb, head = small_model()
    p = Personalizer(emb, head, open_store(tmp_path / "profiles.db", checkpoint_interval_s=0.2))
    reader = sqlite3.connect(tmp_path / "profiles.db", check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM profiles").fetchone()     # holds a read snapshot of the WAL
    release = threading.Timer(1.5, lambda: (reader.execute("COMMIT"), reader.close()))
    release.start()
    needles = _enroll_and_forget(p, others=3)
    release.join()
    import time

    deadline = time.time() + 5
    files = lambda: sorted(glob.glob(str(tmp_path / "profiles.db*")))   # noqa: E731
    while _hits(files(), needles) and time.time() < deadline:
        time.sleep(0.1)
    assert _hits(files(), needles) == {}
    p.store.close()


def test_sqlite_purge_vacuums_the_file(tmp_path):
    emb, head = small_model()
    p = Personalizer(emb, head, tmp_path / "profiles.db")
    import sqlite3

    _enroll_and_forget(p)
    for i in range(30):
        p.forget(f"stays-{i:03d}")

    def free_pages() -> int:
        with sqlite3.connect(tmp_path / "profiles.db") as con:
            return con.execute("PRAGMA freelist_count").fetchone()[0]

    assert free_pages() > 0
    report = p.store.purge()
    assert report == {"backend": "sqlite", "vacuum": True, "wal_truncated": True}
    assert free_pages() == 0                                   # no free page keeps old data
    assert os.path.getsize(tmp_path / "profiles.db-wal") == 0
    p.store.close()


def _pg_relation_files(url: str, schema: str) -> list[str]:
    """Every file of the profile tables of ``schema``: heap, TOAST, indexes (all forks and segments)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        datadir = conn.execute("SHOW data_directory").fetchone()[0]
        rels = conn.execute(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'i', 't') "
            "UNION SELECT pg_relation_filepath(c.reltoastrelid) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.reltoastrelid <> 0 "
            "UNION SELECT pg_relation_filepath(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "WHERE c.oid IN (SELECT reltoastrelid FROM pg_class c2 JOIN pg_namespace n2 ON n2.oid = c2.relnamespace "
            "WHERE n2.nspname = %s)", (schema, schema, schema)).fetchall()
        conn.execute("CHECKPOINT")      # flush the shared buffers, so the files hold what the server holds
    files = []
    for (rel,) in rels:
        if rel:
            files += [f for f in glob.glob(os.path.join(datadir, rel) + "*") if os.path.isfile(f)]
    return files


def _pg_dead_rows(url: str, schema: str) -> tuple[int, bool]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        n, last = conn.execute("SELECT n_dead_tup, last_vacuum FROM pg_stat_all_tables "
                               "WHERE schemaname = %s AND relname = 'profiles'", (schema,)).fetchone()
    return int(n), last is not None


def test_postgres_forget_vacuums_and_purge_leaves_no_byte_in_the_table_files(pg_url):
    """PostgreSQL's VACUUM frees a deleted row but does not zero its bytes in the page (measured:
    the id stays in the heap and index pages until overwritten), so ``forget`` vacuums (the row
    is gone from every index and its space reusable) and ``purge`` (VACUUM FULL) rewrites the
    tables: after it no byte of the user is in any table file. docs/personalizer.md says so."""
    emb, head = small_model()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    p = Personalizer(emb, head, open_store(pg_url, schema=schema))
    files = _pg_relation_files(pg_url, schema)
    if not files or not all(os.access(f, os.R_OK) for f in files):
        pytest.skip("the PostgreSQL data directory is not readable from here (an external server)")
    needles = _enroll_and_forget(p, files=lambda: _pg_relation_files(pg_url, schema))
    dead, vacuumed = _pg_dead_rows(pg_url, schema)
    assert vacuumed and dead == 0                 # forget ran VACUUM: no dead row version is left
    report = p.store.purge()
    assert report["backend"] == "postgresql" and report["vacuum"] is True
    assert p.has_user("stays-001") and p.users(limit=100) == [f"stays-{i:03d}" for i in range(30)]
    files = _pg_relation_files(pg_url, schema)
    assert len(files) >= 4                        # heap, TOAST heap, TOAST index, primary key index
    assert _hits(files, needles) == {}
    p.store.close()
