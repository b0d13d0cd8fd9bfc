"""Scenario builders on the real corpora's speakers and labels: speaker-disjoint, covering what they claim."""
from __future__ import annotations

import numpy as np
import pytest

from adapt.errors import TooFewClipsError
from scenarios.continual import (
    SCENARIOS, UnknownEmotionError, class_incremental, fewshot_incremental, language_incremental, make_scenario,
    speaker_incremental,
)
from tests.helpers.continual import corpus_table

SHARED = ["angry", "happy", "neutral", "sad"]


@pytest.fixture(scope="module")
def table(ravdess, emodb, emovo, urdu):
    return corpus_table([ravdess, emodb, emovo, urdu])


def _check_disjoint(sc, table):
    """No test speaker of any experience is a training speaker of any experience; rows match speakers."""
    trained = set().union(*map(set, sc.train_speakers))
    tested = set().union(*map(set, sc.test_speakers))
    assert trained and tested and not trained & tested
    for i in range(sc.n_experiences):
        assert set(table.speakers[sc.train_indices[i]]) == set(sc.train_speakers[i])
        assert set(table.speakers[sc.test_indices[i]]) == set(sc.test_speakers[i])
        assert len(sc.test_speakers[i]) >= 1
        # the Avalanche streams hold exactly these rows
        assert len(sc.benchmark.train_stream[i].dataset) == len(sc.train_indices[i])
        assert len(sc.benchmark.test_stream[i].dataset) == len(sc.test_indices[i])
        ys = np.asarray(sc.classes)[sc.train_data[i][1].numpy()]
        assert (ys == table.y[sc.train_indices[i]]).all()


def test_language_incremental_one_corpus_per_experience(table):
    sc = language_incremental(table, order=["emodb", "ravdess", "urdu", "emovo"], seed=1)
    _check_disjoint(sc, table)
    assert sc.experience_names == ("emodb", "ravdess", "urdu", "emovo")
    assert list(sc.classes) == SHARED
    for i, corpus in enumerate(sc.experience_names):
        rows = np.concatenate([sc.train_indices[i], sc.test_indices[i]])
        assert set(table.corpora[rows]) == {corpus}
        # covers every clip of the shared emotions in that corpus, each once
        want = np.flatnonzero((table.corpora == corpus) & np.isin(table.y, SHARED))
        assert sorted(rows.tolist()) == want.tolist()
        assert set(table.y[sc.test_indices[i]]) == set(SHARED)


def test_language_incremental_by_language_and_default_order(table):
    sc = language_incremental(table, by="language")
    assert sc.experience_names == ("en", "de", "it", "ur")
    _check_disjoint(sc, table)


def test_speaker_incremental_groups_partition_the_speakers(table):
    sc = speaker_incremental(table, n_experiences=5, seed=2)
    _check_disjoint(sc, table)
    groups = [set(a) | set(b) for a, b in zip(sc.train_speakers, sc.test_speakers)]
    assert sum(map(len, groups)) == len(set().union(*groups))  # groups are disjoint
    assert set().union(*groups) == set(table.speakers)          # and cover every speaker
    assert list(sc.classes) == SHARED
    for i in range(sc.n_experiences):
        assert set(table.y[sc.train_indices[i]]) <= set(SHARED)


def test_speaker_incremental_corpus_order_keeps_corpora_together(table):
    sc = speaker_incremental(table, n_experiences=4, order="corpus", seed=0)
    rank = {c: i for i, c in enumerate(sorted(set(table.corpora)))}
    spans = []
    for i in range(sc.n_experiences):
        present = {rank[c] for c in table.corpora[np.concatenate([sc.train_indices[i], sc.test_indices[i]])]}
        spans.append((min(present), max(present)))
    # corpora come in blocks: experience i never holds a corpus that sorts before one of experience i-1
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    assert spans[0][0] == 0 and spans[-1][1] == len(rank) - 1


def test_class_incremental_steps_partition_the_classes(table):
    steps = [["neutral", "sad"], ["happy", "angry"], ["fear", "disgust", "surprise"]]
    sc = class_incremental(table, steps=steps, seed=0)
    _check_disjoint(sc, table)
    for i, step in enumerate(steps):
        assert set(table.y[sc.train_indices[i]]) == set(step)
        assert set(table.y[sc.test_indices[i]]) == set(step)
    # the speaker split is the same for all experiences and every corpus trains and tests
    assert set(table.corpora[np.concatenate(sc.train_indices)]) == {"ravdess", "emodb", "emovo", "urdu"}
    assert set(table.corpora[np.concatenate(sc.test_indices)]) == {"ravdess", "emodb", "emovo", "urdu"}


def test_class_incremental_random_steps(table):
    sc = class_incremental(table, n_experiences=3, seed=4)
    assert sc.n_experiences == 3
    seen = [set(table.y[idx]) for idx in sc.train_indices]
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2])
    assert set().union(*seen) == set(table.y)


def test_fewshot_keeps_k_clips_per_class_and_the_test_sets(table):
    base = speaker_incremental(table, n_experiences=3, seed=0)
    few = fewshot_incremental(table, shots=3, base="speaker-incremental", n_experiences=3, seed=0)
    _check_disjoint(few, table)
    for i in range(3):
        labels, counts = np.unique(table.y[few.train_indices[i]], return_counts=True)
        assert set(labels) == set(SHARED) and (counts == 3).all()
        assert set(few.train_indices[i]) <= set(base.train_indices[i])
        assert few.test_indices[i].tolist() == base.test_indices[i].tolist()
    assert few.fingerprint != base.fingerprint


def test_speaker_normalization_centres_each_speaker(table):
    sc = language_incremental(table, normalize="speaker")
    x, _ = sc.train_data[0]
    spk = table.speakers[sc.train_indices[0]]
    # speaker statistics come from all of a speaker's clips; the shared-emotion subset stays near 0
    means = np.stack([x.numpy()[spk == s].mean(0) for s in np.unique(spk)])
    raw = language_incremental(table, normalize="none").train_data[0][0].numpy()
    raw_means = np.stack([raw[spk == s].mean(0) for s in np.unique(spk)])
    assert np.abs(means).mean() < 0.5 * np.abs(raw_means).mean()


def test_deterministic_under_seed(table):
    a, b = speaker_incremental(table, seed=5), speaker_incremental(table, seed=5)
    c = speaker_incremental(table, seed=6)
    assert a.fingerprint == b.fingerprint and a.train_speakers == b.train_speakers
    assert a.fingerprint != c.fingerprint


def test_errors_name_the_offending_value(table):
    with pytest.raises(UnknownEmotionError, match="joy"):
        language_incremental(table, classes=["joy", "sad"])
    with pytest.raises(ValueError, match="test_fraction"):
        speaker_incremental(table, test_fraction=1.0)
    with pytest.raises(ValueError, match="normalize"):
        speaker_incremental(table, normalize="global")
    with pytest.raises(ValueError, match="crema"):
        language_incremental(table, order=["ravdess", "crema"])
    with pytest.raises(KeyError, match="speaker-incremental"):
        make_scenario("domain-incremental", table)
    with pytest.raises(TypeError, match="speakers"):
        speaker_incremental(object())
    with pytest.raises(ValueError, match="shots"):
        speaker_incremental(table, shots=0)
    solo = type(table)(table.X[:10], table.y[:10], np.array(["s"] * 10), table.corpora[:10], table.languages[:10])
    with pytest.raises(TooFewClipsError, match="speaker"):
        language_incremental(solo)


def test_registry_lists_the_four_scenarios():
    assert set(SCENARIOS) == {"speaker-incremental", "language-incremental", "class-incremental", "fewshot-incremental"}
