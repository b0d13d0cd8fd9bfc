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
    r = runner.invoke(app, ["users", "export", "alice", "--out", str(out), "--store", db, "--head", str(head_path)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["state"]["counts"] == [2.0, 2.0]
    r = runner.invoke(app, ["users", "import", str(out), "--user", "alice2", "--store", db, "--head", str(head_path)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["counts"] == {"angry": 2, "sad": 2}
    assert runner.invoke(app, ["users", "forget", "alice", "--store", db]).exit_code == 0
    assert runner.invoke(app, ["users", "list", "--store", db]).output.split() == ["alice2"]
    assert runner.invoke(app, ["users", "forget", "alice", "--store", db]).exit_code == 1
    assert runner.invoke(app, ["users", "export", "alice", "--store", db, "--head", str(head_path)]).exit_code == 2
    # a profile made with another head is refused in one line (the shipped head keeps 1920 dims, this one 8)
    r = runner.invoke(app, ["users", "export", "alice2", "--store", db])
    assert r.exit_code == 2 and "error: InvalidStateError" in r.output and "another head" in r.output, r.output


def test_runtime_commands_share_one_error_policy(tmp_path):
    """Exit status 2 with ``error: <Type>: ...`` for what a user can cause, never a traceback."""
    db = str(tmp_path / "e.db")
    (tmp_path / "not.json").write_text("not json")
    cases = [["keys", "create", "--tenant", "bad tenant"], ["keys", "list", "--tenant", "bad tenant"],
             ["users", "list", "--tenant", "bad tenant"], ["users", "forget", " alice"],
             ["users", "export", "a/b"], ["users", "import", str(tmp_path / "not.json")],
             ["users", "labels", "ghost", "sad"], ["users", "labels", " alice", "--clear"],
             ["tenant", "show"], ["tenant", "export"], ["tenant", "labels", "a\tb"],
             ["tenant", "import", str(tmp_path / "not.json")], ["tenant", "show", "--tenant", "bad tenant"]]
    for args in cases:
        r = runner.invoke(app, [*args, "--store", db])
        assert r.exit_code == 2 and "error: " in r.output and isinstance(r.exception, SystemExit), (args, r.output)
    # an unknown backbone is a usage error of --backbone, not a KeyError traceback
    for args in (["predict", "--user", "a", "--backbone", "nope", "x.wav"], ["serve", "--backbone", "nope"],
                 ["users", "observe", "a", "x.wav", "--backbone", "nope"], ["tenant", "enroll", "x.wav", "--labels",
                                                                             "sad", "--backbone", "nope"]):
        r = runner.invoke(app, [*args, "--store", db])
        assert r.exit_code == 2 and "unknown backbone 'nope'" in r.output, (args, r.output)


def test_users_observe_and_predict_labels_with_real_audio(tmp_path, logmel_head, actor_clips):
    db = str(tmp_path / "o.db")
    common = ["--store", db, "--head", logmel_head, "--backbone", "logmel"]
    clips = actor_clips["ravdess_10"]
    unlabelled = clips["happy"] + clips["neutral"]
    before = runner.invoke(app, ["predict", "--user", "olga", clips["sad"][0], *common])
    assert before.exit_code == 0 and json.loads(before.output)["personalized"] is False, before.output
    r = runner.invoke(app, ["users", "observe", "olga", *unlabelled, *common])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"user": "olga", "counts": {}, "custom_emotions": [], "clips": 4, "revision": 1,
                                    "unlabelled": 4, "labels": None}
    after = json.loads(runner.invoke(app, ["predict", "--user", "olga", clips["sad"][0], *common]).output)
    assert after["personalized"] is True and after["probabilities"] != json.loads(before.output)["probabilities"]
    assert Personalizer.admin(db, head=logmel_head).summary("olga").unlabelled == 4
    r = runner.invoke(app, ["users", "observe", "olga", str(tmp_path / "missing.wav"), *common])
    assert r.exit_code == 2 and "error: " in r.output and isinstance(r.exception, SystemExit), r.output

    # --labels: the probabilities have exactly these keys, for every file
    r = runner.invoke(app, ["predict", "--user", "olga", *clips["sad"], "--labels", "sad,angry, happy", *common])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert len(lines) == 2 and all(set(x["probabilities"]) == {"sad", "angry", "happy"} for x in lines)
    assert all(x["label"] in {"sad", "angry", "happy"} for x in lines)
    for bad, err in (("sad,smug", "smug"), (",", "at least one")):
        r = runner.invoke(app, ["predict", "--user", "olga", clips["sad"][0], "--labels", bad, *common])
        assert r.exit_code == 2 and "error: UnknownLabelError" in r.output and err in r.output, r.output


def test_users_labels_set_and_clear(tmp_path, logmel_head, actor_clips):
    db = str(tmp_path / "l.db")
    common = ["--store", db, "--head", logmel_head]
    clips = actor_clips["ravdess_11"]
    assert runner.invoke(app, ["enroll", "--user", "alice", "--label", "sad", "--label", "angry", clips["sad"][0],
                               clips["angry"][0], "--backbone", "logmel", *common]).exit_code == 0
    r = runner.invoke(app, ["users", "labels", "alice", "sad,angry", *common])
    assert r.exit_code == 0 and json.loads(r.output)["labels"] == ["sad", "angry"], r.output
    r = runner.invoke(app, ["predict", "--user", "alice", clips["sad"][1], "--backbone", "logmel", *common])
    assert set(json.loads(r.output)["probabilities"]) == {"sad", "angry"}
    r = runner.invoke(app, ["users", "labels", "alice", "sad,smug", *common])
    assert r.exit_code == 2 and "error: UnknownLabelError" in r.output
    assert Personalizer.admin(db, head=logmel_head).summary("alice").labels == ("sad", "angry")   # unchanged
    r = runner.invoke(app, ["users", "labels", "alice", "sad", "--clear", *common])
    assert r.exit_code == 2 and "--clear" in r.output
    r = runner.invoke(app, ["users", "labels", "alice", "--clear", *common])
    assert r.exit_code == 0 and json.loads(r.output)["labels"] is None
    r = runner.invoke(app, ["users", "labels", "ghost", "sad", *common])
    assert r.exit_code == 2 and "error: UnknownUserError" in r.output


def test_keys_rotate_expire_and_ids_with_a_trailing_newline(tmp_path):
    """Review defect 8 (``--tenant $'A\\n'`` was accepted) and the key lifecycle."""
    db = str(tmp_path / "k.db")
    r = runner.invoke(app, ["keys", "create", "--tenant", "A\n", "--store", db])
    assert r.exit_code == 2 and "invalid tenant" in r.output
    with open_store(db) as s:
        assert s.list_keys() == []
    key = runner.invoke(app, ["keys", "create", "--tenant", "acme", "--read-only", "--store", db]).output.strip()
    key_id = key.split("_")[1]
    r = runner.invoke(app, ["keys", "rotate", key_id, "--grace-hours", "2", "--store", db])
    assert r.exit_code == 0, r.output
    new = r.output.strip().splitlines()[0]
    with open_store(db) as s:
        old_rec, new_rec = s.authenticate(key), s.authenticate(new)
        assert old_rec is not None and new_rec.read_only and new_rec.tenant == "acme"
        import time

        assert 7000 < old_rec.expires_at - time.time() <= 7200 and new_rec.expires_at is None
    listing = runner.invoke(app, ["keys", "list", "--store", db]).output
    assert "expires" in listing and "never" in listing
    assert runner.invoke(app, ["keys", "rotate", "000000000000", "--store", db]).exit_code == 1


def test_users_import_without_a_user_key_and_purge(tmp_path):
    """Review defect 9: an export without ``user`` was a TypeError traceback."""
    db = str(tmp_path / "u.db")
    bad = tmp_path / "nouser.json"
    bad.write_text(json.dumps({"state": {"format": "ser-adapt.UserState"}}))
    r = runner.invoke(app, ["users", "import", str(bad), "--store", db])
    assert r.exit_code == 2 and "names no user" in r.output and "Traceback" not in r.output
    bad.write_text("[1, 2]")
    r = runner.invoke(app, ["users", "import", str(bad), "--store", db])
    assert r.exit_code == 2 and "not an exported user profile" in r.output
    r = runner.invoke(app, ["users", "purge", "--store", db])
    assert r.exit_code == 0 and json.loads(r.output) == {"backend": "sqlite", "vacuum": True, "wal_truncated": True}
