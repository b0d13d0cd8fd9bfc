"""Few-shot protocols: splits never leak a clip or a speaker; personalization helps on real EmoDB."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapt.errors import TooFewClipsError
from scenarios.fewshot import new_corpus, new_emotion, personalization, protocols, rows_to_markdown
from scenarios.splits import personalization_split
from scenarios.fewshot.recipes import RECIPES, make_recipe


@settings(max_examples=60, deadline=None)
@given(n_spk=st.integers(2, 4), n_emo=st.integers(2, 4), n_txt=st.integers(1, 4), shots=st.integers(1, 6),
       disjoint=st.booleans(), seed=st.integers(0, 50), data=st.data())
def test_capped_enrollment_never_leaks(n_spk, n_emo, n_txt, shots, disjoint, seed, data):
    n = data.draw(st.integers(n_spk * 2, 60))
    spk = np.array([f"s{i % n_spk}" for i in range(n)])
    emo = np.array([f"e{data.draw(st.integers(0, n_emo - 1))}" for _ in range(n)])
    txt = np.array([f"t{data.draw(st.integers(0, n_txt - 1))}" for _ in range(n)], dtype=object)
    try:
        enroll, test = personalization_split(spk, emo, "s0", shots=shots, text_ids=txt, sentence_disjoint=disjoint,
                                             shortfall="cap", seed=seed)
    except TooFewClipsError:
        return
    assert not set(enroll) & set(test)
    assert set(spk[enroll]) <= {"s0"} and set(spk[test]) <= {"s0"}
    for e in set(emo[enroll]):
        assert (emo[enroll] == e).sum() <= shots
    if disjoint and len(test):
        assert not set(txt[enroll]) & set(txt[test])


def _toy_features(rng, n_spk=5, per=6, emotions=("angry", "happy", "sad"), texts=("t1", "t2"), corpus="toy"):
    rows = [(s, e, t) for s in range(n_spk) for e in emotions for t in texts for _ in range(per // len(texts))]
    spk = np.array([f"{corpus}_{s}" for s, _, _ in rows])
    y = np.array([e for _, e, _ in rows])
    txt = np.array([t for _, _, t in rows], dtype=object)
    centres = {e: rng.normal(size=8) * 3 for e in emotions}
    X = np.stack([centres[e] + rng.normal(size=8) for e in y]).astype(np.float32)
    X[:, 0] = np.arange(len(y))          # column 0 = row id, so a spy can see which rows it got
    return SimpleNamespace(X=X, y=y, speakers=spk, text_ids=txt, corpora=np.array([corpus] * len(y)))


class Spy:
    """A recipe that records the rows it trains on and the rows it adapts to / predicts."""

    log: list = []
    normalize = False

    def __init__(self, *_, **__):
        pass

    def fit_reference(self, X, y, speakers, **_):
        self.train_rows = set(X[:, 0].astype(int).tolist())
        return self

    def personalize(self, Xe, ye, Xt, **_):
        Spy.log.append((self.train_rows, set(Xe[:, 0].astype(int)), set(Xt[:, 0].astype(int))))
        return np.asarray(ye)[np.zeros(len(Xt), dtype=int)]


def test_personalization_never_trains_on_the_target(rng, monkeypatch):
    fs = _toy_features(rng)
    Spy.log = []
    monkeypatch.setattr(protocols, "make_recipe", lambda *a, **k: Spy())
    personalization(fs, recipes=["si"], shots=(1, 2), seeds=(0, 1), n_boot=10)
    assert Spy.log
    for train, enroll, test in Spy.log:
        target = set(fs.speakers[list(test)])
        assert len(target) == 1 and set(fs.speakers[list(enroll)]) == target
        assert not target & set(fs.speakers[list(train)])
        assert not enroll & test


def test_new_corpus_enrollment_and_test_speakers_are_disjoint(rng, monkeypatch):
    train, target = _toy_features(rng, corpus="a"), _toy_features(rng, corpus="b")
    target.X[:, 0] += 10_000             # row ids of the new corpus are told apart from training rows
    Spy.log = []
    monkeypatch.setattr(protocols, "make_recipe", lambda *a, **k: Spy())
    monkeypatch.setattr(Spy, "reference", SimpleNamespace(predict=lambda X: np.array(["angry"] * len(X))), raising=False)
    new_corpus(train, target, recipes=["si"], shots=(1, 2), n_boot=10)
    assert Spy.log
    for tr, enroll, test in Spy.log:
        assert max(tr) < 10_000                           # the recipe trains on the other corpus only
        e_spk = set(target.speakers[[i - 10_000 for i in enroll]])
        t_spk = set(target.speakers[[i - 10_000 for i in test]])
        assert e_spk and t_spk and not e_spk & t_spk      # enrollment and test speakers never overlap


def test_protocols_on_toy_data(rng):
    fs = _toy_features(rng)
    rows = personalization(fs, recipes=["prototype+norm", "linear-ft"], shots=(2,), n_boot=20)
    assert {r.method for r in rows} == {"si", "prototype+norm", "linear-ft"}
    for r in rows:
        assert 0 <= r.lo <= r.ua <= r.hi <= 1 and r.n_targets == 5
    em = new_emotion(fs, heads=("prototype", "linear-cal"), shots=(2,), folds=5, n_boot=20)
    assert {r.method for r in em} == {"prototype+norm", "linear-cal+norm"}
    assert all(0 <= r.extra["new_recall"] <= 1 for r in em)
    by = {r.method: r for r in em}
    assert by["prototype+norm"].extra["offset"] == 0.0 and by["linear-cal+norm"].extra["offset"] >= 0.0
    with pytest.raises(KeyError, match="linear-cal"):
        new_emotion(fs, heads=("svm",))
    md = rows_to_markdown(rows, ["method", "shots", "ua", "new_recall"])
    assert md.count("\n") == len(rows) + 1


def test_recipe_registry():
    assert "linear-ft+norm" in RECIPES and "norm" in RECIPES
    with pytest.raises(KeyError, match="linear-ft"):
        make_recipe("finetune")


def test_personalization_beats_reference_on_real_emodb(data_dir):
    """Real Whisper features of EmoDB (10 speakers): 5 sentence-disjoint shots of the target help."""
    features = pytest.importorskip("scenarios.tables")
    fs = features.corpus_features("emodb")
    rows = personalization(fs, recipes=["linear-ft+norm"], shots=(5,), modes=("disjoint",), folds=5, n_boot=100)
    by = {r.method: r for r in rows}
    si, pers = by["si"], by["linear-ft+norm"]
    assert si.n_targets == 10
    assert si.ua > 0.5                                  # the reference is far above chance (1/7)
    assert pers.ua > si.ua + 0.01, (si.ua, pers.ua)     # personalization helps on the same clips


def test_select_by_corpus_cv_uses_training_corpora_only(rng):
    from scenarios.tables import FeatureTable
    from scenarios.fewshot import select_by_corpus_cv

    def part(name):
        t = _toy_features(rng, n_spk=4, corpus=name)
        X = t.X.copy()
        X[:, 0] = 0.0
        return FeatureTable(X=X, y=t.y, speakers=t.speakers, text_ids=t.text_ids,
                          languages=np.array(["xx"] * len(t.y)), corpora=t.corpora, clip_ids=t.speakers)

    parts = [part("a"), part("b"), part("c")]
    cfg, scores = select_by_corpus_cv(parts, recipe="linear-ft", grid={"ft_decay": (1e-3, 1.0)}, shots=2)
    assert set(scores) == {(1e-3,), (1.0,)}
    assert cfg.ft_decay == max(scores, key=scores.get)[0]
    assert all(0 <= v <= 1 for v in scores.values())
    with pytest.raises(ValueError, match="2 training corpora"):
        select_by_corpus_cv(parts[:1], recipe="linear-ft", grid={"ft_decay": (1e-2,)})
