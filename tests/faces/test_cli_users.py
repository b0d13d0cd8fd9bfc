"""CLI: `ser-adapt keys ...` and `ser-adapt users ...` against a temporary store."""
from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from adapt.cli import app
from adapt.personal import GlobalHead
from adapt.personal import Personalizer
from adapt.store import open_store

runner = CliRunner()


def test_keys_create_list_revoke(tmp_path):
    db = str(tmp_path / "k.db")
    r = runner.invoke(app, ["keys", "create", "--tenant", "acme", "--store", db])
    assert r.exit_code == 0, r.output
    key = r.output.strip()
    with open_store(db) as s:
        rec = s.authenticate(key)
        assert rec.tenant == "acme" and not rec.read_only
    r = runner.invoke(app, ["keys", "list", "--store", db])
    assert rec.key_id in r.output and "acme" in r.output and key not in r.output
    assert runner.invoke(app, ["keys", "revoke", rec.key_id, "--store", db]).exit_code == 0
    with open_store(db) as s:
        assert s.authenticate(key) is None
    assert runner.invoke(app, ["keys", "revoke", rec.key_id, "--store", db]).exit_code == 1
    assert runner.invoke(app, ["keys", "create", "--tenant", "bad tenant", "--store", db]).exit_code == 2


def test_users_list_export_import_forget(tmp_path):
    db = str(tmp_path / "u.db")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8)).astype(np.float32)
    head = GlobalHead.fit(X, np.array(["angry", "sad"] * 20), speakers=np.array(["a", "b"] * 20))
    head_path = tmp_path / "head.json"
    head.save(head_path)
    p = Personalizer(lambda w: None, head, db)
    p.enroll_embeddings("alice", X[:4], ["angry", "sad", "angry", "sad"])
    assert runner.invoke(app, ["users", "list", "--store", db]).output.split() == ["alice"]
    out = tmp_path / "alice.json"
    assert runner.invoke(app, ["users", "export", "alice", "--out", str(out), "--store", db]).exit_code == 0
    assert json.loads(out.read_text())["state"]["counts"] == [2.0, 2.0]
    r = runner.invoke(app, ["users", "import", str(out), "--user", "alice2", "--store", db, "--head", str(head_path)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["counts"] == {"angry": 2, "sad": 2}
    assert runner.invoke(app, ["users", "forget", "alice", "--store", db]).exit_code == 0
    assert runner.invoke(app, ["users", "list", "--store", db]).output.split() == ["alice2"]
    assert runner.invoke(app, ["users", "forget", "alice", "--store", db]).exit_code == 1
    assert runner.invoke(app, ["users", "export", "alice", "--store", db]).exit_code == 2


def test_runtime_commands_share_one_error_policy(tmp_path):
    """Exit status 2 with ``error: <Type>: ...`` for what a user can cause, never a traceback."""
    db = str(tmp_path / "e.db")
    (tmp_path / "not.json").write_text("not json")
    cases = [["keys", "create", "--tenant", "bad tenant"], ["keys", "list", "--tenant", "bad tenant"],
             ["users", "list", "--tenant", "bad tenant"], ["users", "forget", " alice"],
             ["users", "export", "a/b"], ["users", "import", str(tmp_path / "not.json")]]
    for args in cases:
        r = runner.invoke(app, [*args, "--store", db])
        assert r.exit_code == 2 and "error: " in r.output and isinstance(r.exception, SystemExit), (args, r.output)
    # an unknown backbone is a usage error of --backbone, not a KeyError traceback
    for args in (["predict", "--user", "a", "--backbone", "nope", "x.wav"], ["serve", "--backbone", "nope"]):
        r = runner.invoke(app, [*args, "--store", db])
        assert r.exit_code == 2 and "unknown backbone 'nope'" in r.output, (args, r.output)
