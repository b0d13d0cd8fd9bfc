"""The real default: offline Whisper backbone + shipped global head, on real RAVDESS audio."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adapt.metrics import unweighted_average_recall
from adapt.personal import GlobalHead
from adapt.personal import Personalizer, default_head_path


def test_shipped_head_is_small_and_documented():
    path = default_head_path()
    assert path.is_file() and path.stat().st_size < 2 * 1024 * 1024
    head = GlobalHead.load(path)
    assert head.info["command"].startswith("ser-adapt train-head")
    assert set(head.info["corpora"]) == {"ravdess", "emodb", "emovo", "urdu", "rcebrian_es", "indianemospeech"}
    assert {"angry", "sad", "happy", "neutral"} <= set(head.classes)
    assert head.info["recipe"]["dim"] == head.dim == 256 and head.input_dim == 1920
    card = (path.parent / "MODEL_CARD.md").read_text()
    for must in ("Training data", "Licences", "Recipe", "Leave one corpus out", "Limits", *head.info["corpora"]):
        assert must in card, must


def test_format_1_heads_still_load_but_the_personalizer_wants_format_2(tmp_path):
    from adapt.errors import InvalidStateError
    from adapt.personal import FusedPrototypeHead, load_head

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 8)).astype("float32"), np.array(["angry", "sad", "happy"] * 20)
    old = FusedPrototypeHead.fit(X, y, speakers=np.repeat(["a", "b"], 30), linear=True)
    old.save(tmp_path / "old.npz")
    back = load_head(tmp_path / "old.npz")
    assert isinstance(back, FusedPrototypeHead) and back.classes == ("angry", "happy", "sad")
    assert np.allclose(back.predict_proba_global(X[:3]), old.predict_proba_global(X[:3]), atol=1e-5)
    with pytest.raises(InvalidStateError, match="format-1"):
        GlobalHead.load(tmp_path / "old.npz")
    with pytest.raises(InvalidStateError, match="format-2"):
        Personalizer(None, tmp_path / "old.npz", ":memory:")


@pytest.fixture(scope="module")
def default_p(tmp_path_factory):
    try:
        return Personalizer.default(store=tmp_path_factory.mktemp("d") / "profiles.db")
    except Exception as exc:  # noqa: BLE001 - only a missing backbone may skip
        from adapt.errors import BackboneNotAvailableError

        if isinstance(exc, BackboneNotAvailableError):
            pytest.skip(f"default backbone not available: {exc}")
        raise


def test_enroll_a_real_speaker_and_roundtrip(default_p, ravdess):
    p = default_p
    recs = list(ravdess.filter(speakers=["ravdess_05"]))
    emotions = ["angry", "calm", "happy", "sad"]
    enroll = [r for e in emotions for r in [x for x in recs if x.emotion == e and x.text_id == "s01"][:2]]
    test = [r for r in recs if r.emotion in emotions and r.text_id == "s02"]
    s = p.enroll("actor5", [r.path for r in enroll], [r.emotion for r in enroll])
    assert s.counts == {e: 2 for e in emotions}
    preds = p.predict_batch("actor5", [r.path for r in test])
    assert all(x.personalized for x in preds)
    y = [r.emotion for r in test]
    ua = unweighted_average_recall(y, [x.label for x in preds])
    assert ua > 1 / len(p.head.classes)  # better than chance over the head's classes
    # export -> import under another name predicts the same
    p.import_user(json.loads(json.dumps(p.export_user("actor5"))), user="actor5-copy")
    again = p.predict_batch("actor5-copy", [r.path for r in test[:4]])
    for a, b in zip(preds[:4], again):
        assert a.label == b.label and np.isclose(a.confidence, b.confidence, atol=1e-5)
    p.forget("actor5")
    assert p.predict("actor5", test[0].path).personalized is False


def test_cli_enroll_and_predict_with_the_default_model(tmp_path, ravdess, default_p):
    from typer.testing import CliRunner

    from adapt.cli import app

    recs = list(ravdess.filter(speakers=["ravdess_06"], emotions=["angry", "sad"]))
    s01 = [r for r in recs if r.text_id == "s01"][:4]
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    args = ["enroll", "--user", "zoe", "--store", db]
    for r in s01:
        args += ["--label", r.emotion]
    r = runner.invoke(app, args + [str(r.path) for r in s01])
    assert r.exit_code == 0, r.output
    assert sum(json.loads(r.output)["counts"].values()) == 4
    test = [r for r in recs if r.text_id == "s02"][:2]
    r = runner.invoke(app, ["predict", "--user", "zoe", "--store", db] + [str(x.path) for x in test])
    assert r.exit_code == 0, r.output
    lines = [json.loads(l) for l in r.output.strip().splitlines()]
    assert [l["file"] for l in lines] == [str(x.path) for x in test] and all(l["personalized"] for l in lines)
    r = runner.invoke(app, ["enroll", "--user", "zoe", "--store", db, "--label", "smug", str(test[0].path)])
    assert r.exit_code == 2 and "UnknownLabelError" in r.output
