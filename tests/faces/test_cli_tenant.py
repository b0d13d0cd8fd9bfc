"""CLI: `ser-adapt tenant ...` (enroll, show, export, import, labels, forget) against a temporary
store, with real audio and the ``logmel`` backbone."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from adapt.cli import app
from adapt.personal import Personalizer

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def tenant_rows(actor_clips):
    files, labels, speakers = [], [], []
    for spk, by_emotion in actor_clips.items():
        for e, paths in by_emotion.items():
            files += paths
            labels += [e] * len(paths)
            speakers += [spk] * len(paths)
    return files, labels, speakers


def test_tenant_enroll_show_export_forget_import(tmp_path, logmel_head, actor_clips):
    db, head = tmp_path / "t.db", logmel_head
    common = ["--store", db, "--head", head]
    r = invoke("tenant", "show", *common)
    assert r.exit_code == 2 and "error: UnknownTenantError" in r.output and "no tenant profile" in r.output, r.output
    files, labels, speakers = tenant_rows(actor_clips)
    r = invoke("tenant", "enroll", *files, "--labels", ",".join(labels), "--speakers", ",".join(speakers),
               "--backbone", "logmel", *common)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary == {"tenant": "default", "counts": {"angry": 4, "happy": 4, "neutral": 4, "sad": 4},
                       "speakers": 2, "labels": None, "revision": 1}
    p = Personalizer.admin(str(db), head=head)
    assert p.tenant_summary().to_dict() == summary                  # the CLI wrote through the Personalizer
    assert json.loads(invoke("tenant", "show", *common).output) == summary

    out = tmp_path / "tenant.json"
    assert invoke("tenant", "export", "--out", out, *common).exit_code == 0
    exported = json.loads(out.read_text())
    assert exported["state"]["format"] == "ser-adapt.TenantState" and exported["state"]["n_speakers"] == 2
    assert json.loads(invoke("tenant", "export", *common).output) == exported      # stdout too

    r = invoke("tenant", "forget", *common)
    assert r.exit_code == 0 and "forgot tenant default" in r.output
    assert not p.has_tenant_profile()
    assert invoke("tenant", "forget", *common).exit_code == 1                   # nothing left
    r = invoke("tenant", "import", out, *common)
    assert r.exit_code == 0, r.output
    assert {k: v for k, v in json.loads(r.output).items() if k != "revision"} == \
        {k: v for k, v in summary.items() if k != "revision"}
    assert p.export_tenant() == exported
    # onto an existing profile: an error unless --overwrite
    r = invoke("tenant", "import", out, *common)
    assert r.exit_code == 2 and "error: ProfileExistsError" in r.output
    assert invoke("tenant", "import", out, "--overwrite", *common).exit_code == 0
    # another tenant of the same store is separate
    assert invoke("tenant", "show", "--tenant", "other", *common).exit_code == 2
    assert invoke("tenant", "import", out, "--tenant", "other", *common).exit_code == 0
    assert json.loads(invoke("tenant", "show", "--tenant", "other", *common).output)["tenant"] == "other"


def test_tenant_enroll_takes_one_label_for_all_and_repeated_options(tmp_path, logmel_head, actor_clips):
    common = ["--store", tmp_path / "t.db", "--head", logmel_head, "--backbone", "logmel"]
    sad = actor_clips["ravdess_10"]["sad"]
    r = invoke("tenant", "enroll", *sad, "--labels", "sad", *common)
    assert r.exit_code == 0 and json.loads(r.output)["counts"] == {"sad": 2}, r.output
    angry = actor_clips["ravdess_11"]["angry"]
    r = invoke("tenant", "enroll", *angry, "--labels", "angry", "--labels", "angry", "--speakers", "x", *common)
    assert r.exit_code == 0 and json.loads(r.output)["counts"] == {"sad": 2, "angry": 2}, r.output
    # errors are one clean line: mismatched counts, a bad label, a missing file
    for args, err in [((*sad, "--labels", "sad,angry,happy"), "LengthMismatchError"),
                      ((*sad, "--labels", "sad", "--speakers", "a,b,c"), "LengthMismatchError"),
                      ((*sad, "--labels", " "), "LengthMismatchError: 2 clips but 0 labels"),
                      ((tmp_path / "missing.wav", "--labels", "sad"), "error: ")]:
        r = invoke("tenant", "enroll", *args, *common)
        assert r.exit_code == 2 and err in r.output and isinstance(r.exception, SystemExit), (args, r.output)
    assert json.loads(invoke("tenant", "show", *common[:4]).output)["counts"] == {"sad": 2, "angry": 2}


def test_tenant_labels_set_clear_and_refuse(tmp_path, logmel_head, actor_clips):
    db = tmp_path / "t.db"
    common = ["--store", db, "--head", logmel_head]
    r = invoke("tenant", "labels", "sad, angry", *common)
    assert r.exit_code == 0 and json.loads(r.output)["labels"] == ["sad", "angry"], r.output
    clip = actor_clips["ravdess_10"]["sad"][0]
    r = invoke("predict", "--user", "nobody", clip, "--backbone", "logmel", *common)
    assert r.exit_code == 0 and set(json.loads(r.output)["probabilities"]) == {"sad", "angry"}, r.output
    r = invoke("tenant", "labels", "sad,smug", *common)
    assert r.exit_code == 2 and "error: UnknownLabelError" in r.output and "smug" in r.output
    assert json.loads(invoke("tenant", "show", *common).output)["labels"] == ["sad", "angry"]   # unchanged
    for args in ([], ["sad", "--clear"]):                                     # exactly one of LABELS / --clear
        r = invoke("tenant", "labels", *args, *common)
        assert r.exit_code == 2 and "--clear" in r.output, r.output
    r = invoke("tenant", "labels", "--clear", *common)
    assert r.exit_code == 0 and json.loads(r.output)["labels"] is None


def test_tenant_forget_users_deletes_every_user_and_tampered_imports_change_nothing(tmp_path, logmel_head, actor_clips):
    db, head = tmp_path / "t.db", logmel_head
    common = ["--store", db, "--head", head]
    files, labels, speakers = tenant_rows(actor_clips)
    assert invoke("tenant", "enroll", *files, "--labels", ",".join(labels), "--speakers", ",".join(speakers),
                  "--backbone", "logmel", *common).exit_code == 0
    clip = actor_clips["ravdess_10"]["happy"][0]
    for user in ("alice", "bob"):
        assert invoke("enroll", "--user", user, "--label", "happy", clip, "--backbone", "logmel", *common).exit_code == 0
    assert invoke("enroll", "--user", "carol", "--label", "happy", clip, "--backbone", "logmel", "--tenant", "other",
                  *common).exit_code == 0
    before = invoke("tenant", "show", *common).output

    out = tmp_path / "t.json"
    assert invoke("tenant", "export", "--out", out, *common).exit_code == 0
    data = json.loads(out.read_text())
    bad = tmp_path / "bad.json"
    for state in ({**data["state"], "counts": data["state"]["counts"][:1]},
                  {**data["state"], "var_sum": [-1.0] * len(data["state"]["var_sum"])},
                  {**data["state"], "format": "ser-adapt.UserState"}):
        bad.write_text(json.dumps({**data, "state": state}))
        r = invoke("tenant", "import", bad, "--overwrite", *common)
        assert r.exit_code == 2 and "error: InvalidStateError" in r.output and isinstance(r.exception, SystemExit)
    bad.write_text("not json")
    assert "InvalidStateError" in invoke("tenant", "import", bad, "--overwrite", *common).output
    assert invoke("tenant", "show", *common).output == before                 # nothing changed

    r = invoke("tenant", "forget", "--users", *common)
    assert r.exit_code == 0 and "forgot tenant default and 2 user(s)" in r.output, r.output
    assert invoke("users", "list", *common[:2]).output.split() == []
    assert invoke("tenant", "show", *common).exit_code == 2
    assert invoke("tenant", "forget", "--users", *common).exit_code == 1
    assert invoke("users", "list", "--tenant", "other", *common[:2]).output.split() == ["carol"]   # untouched


def test_tenant_enroll_needs_new_emotions_named(tmp_path, logmel_head, actor_clips):
    db, head = tmp_path / "t.db", logmel_head
    common = ["--store", db, "--head", head, "--backbone", "logmel"]
    files = actor_clips[next(iter(actor_clips))]["happy"][:2]
    r = invoke("tenant", "enroll", *files, "--labels", "sarcastic", *common)
    assert r.exit_code == 2 and "UnknownLabelError" in r.output and "new_emotions" in r.output, r.output
    assert not Personalizer.admin(str(db), head=head).has_tenant_profile()      # nothing was written
    r = invoke("tenant", "enroll", *files, "--labels", "sarcastic", "--new-emotions", "sarcastic", *common)
    assert r.exit_code == 0 and json.loads(r.output)["counts"] == {"sarcastic": 2}, r.output
