"""Speaker-disjoint splits: property tests on random label arrays, plus the real corpora."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapt.errors import TooFewClipsError, UnknownSpeakerError
from scenarios.splits import leave_one_speaker_out, personalization_split, speaker_kfold

# Clip tables: (speaker, emotion, text) triples with small alphabets so collisions happen often.
clip_rows = st.lists(
    st.tuples(st.sampled_from("ABCDEFG"), st.sampled_from(["sad", "angry", "happy"]), st.sampled_from(["t1", "t2", "t3", "t4"])),
    min_size=1,
    max_size=80,
)


def _columns(rows):
    spk, emo, txt = (np.array(c, dtype=object) for c in zip(*rows))
    return spk, emo, txt


@settings(max_examples=150, deadline=None)
@given(rows=clip_rows, k=st.integers(2, 6), seed=st.integers(0, 2**32 - 1))
def test_kfold_is_speaker_disjoint_partition(rows, k, seed):
    spk, _, _ = _columns(rows)
    n_spk = len(set(spk))
    if k > n_spk:
        with pytest.raises(ValueError, match=f"n_splits={k}"):
            speaker_kfold(spk, k, seed=seed)
        return
    folds = speaker_kfold(spk, k, seed=seed)
    assert len(folds) == k
    all_test = np.concatenate([te for _, te in folds])
    assert sorted(all_test.tolist()) == list(range(len(spk)))  # test folds partition the clips
    for tr, te in folds:
        assert tr.dtype == np.int64 and te.dtype == np.int64
        assert len(te) > 0
        assert set(spk[tr]).isdisjoint(set(spk[te]))
        assert sorted(np.concatenate([tr, te]).tolist()) == list(range(len(spk)))
    again = speaker_kfold(spk, k, seed=seed)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))


def test_kfold_balances_and_seed_matters():
    spk = np.repeat([f"s{i}" for i in range(10)], 6)
    sizes = {len(te) for _, te in speaker_kfold(spk, 5, seed=0)}
    assert sizes == {12}
    layouts = {tuple(tuple(te) for _, te in speaker_kfold(spk, 5, seed=s)) for s in range(6)}
    assert len(layouts) > 1  # the seed changes which speakers share a fold


@settings(max_examples=100, deadline=None)
@given(rows=clip_rows)
def test_leave_one_speaker_out(rows):
    spk, _, _ = _columns(rows)
    uniq = sorted(set(spk))
    if len(uniq) < 2:
        with pytest.raises(ValueError, match="at least 2 speakers"):
            leave_one_speaker_out(spk)
        return
    folds = leave_one_speaker_out(spk)
    assert [s for s, _, _ in folds] == uniq
    for s, tr, te in folds:
        assert set(spk[te]) == {s} and s not in set(spk[tr])
        assert len(tr) + len(te) == len(spk)


@settings(max_examples=300, deadline=None)
@given(rows=clip_rows, shots=st.integers(1, 3), seed=st.integers(0, 10_000), disjoint=st.booleans(),
       use_text=st.booleans())
def test_personalization_split_properties(rows, shots, seed, disjoint, use_text):
    """Strict mode: exactly ``shots`` clips of every emotion, or a TooFewClipsError naming one."""
    spk, emo, txt = _columns(rows)
    target = spk[0]
    mine = set(np.flatnonzero(spk == target).tolist())
    have = Counter(emo[sorted(mine)].tolist())
    kwargs = dict(shots=shots, text_ids=txt if use_text else None, sentence_disjoint=disjoint, seed=seed)
    if min(have.values()) < shots:
        with pytest.raises(TooFewClipsError) as info:
            personalization_split(spk, emo, target, **kwargs)
        short = [e for e, n in have.items() if n < shots]
        assert any(e in str(info.value) for e in short)  # the message names the short emotion
        return
    sentence_mode = use_text and disjoint
    try:
        enroll, test = personalization_split(spk, emo, target, **kwargs)
    except TooFewClipsError as err:
        # only legitimate when enrollment needs every sentence, or every clip (exactly K per emotion)
        assert "leaving none" in str(err)
        assert sentence_mode or all(n == shots for n in have.values())
        return
    e_set, t_set = set(enroll.tolist()), set(test.tolist())
    assert e_set.isdisjoint(t_set)
    assert e_set | t_set <= mine  # only the target's clips
    assert Counter(emo[enroll].tolist()) == {e: shots for e in have}  # K shots of every emotion
    assert list(enroll) == sorted(enroll) and list(test) == sorted(test)
    if sentence_mode:
        assert set(txt[enroll]).isdisjoint(set(txt[test]))
        assert len(test) > 0
        # every target clip of a non-enrollment sentence is in test
        assert t_set == {i for i in mine if txt[i] not in set(txt[enroll])}
    else:
        assert e_set | t_set == mine  # nothing dropped
    assert len(test) > 0
    again = personalization_split(spk, emo, target, **kwargs)
    assert np.array_equal(again[0], enroll) and np.array_equal(again[1], test)


@settings(max_examples=300, deadline=None)
@given(rows=clip_rows, shots=st.integers(1, 5), seed=st.integers(0, 10_000), use_text=st.booleans())
def test_personalization_cap_properties(rows, shots, seed, use_text):
    spk, emo, txt = _columns(rows)
    target = spk[0]
    mine = set(np.flatnonzero(spk == target).tolist())
    kwargs = dict(shots=shots, text_ids=txt if use_text else None, seed=seed)
    try:
        strict = personalization_split(spk, emo, target, shortfall="fail", **kwargs)
    except TooFewClipsError:
        strict = None
    try:
        enroll, test = personalization_split(spk, emo, target, shortfall="cap", **kwargs)
    except TooFewClipsError as err:
        # only a target with a single sentence has no sentence-disjoint split at all
        assert use_text and strict is None and "single sentence" in str(err)
        assert len({txt[i] for i in mine}) == 1
        return
    if strict is not None:  # "cap" changes nothing where the strict split exists
        assert np.array_equal(strict[0], enroll) and np.array_equal(strict[1], test)
        return
    e_set, t_set = set(enroll.tolist()), set(test.tolist())
    assert e_set.isdisjoint(t_set) and e_set | t_set <= mine and len(test) > 0
    counts = Counter(emo[enroll].tolist())
    assert all(n <= shots for n in counts.values())
    if use_text:
        enroll_sents = set(txt[enroll])
        assert enroll_sents.isdisjoint(set(txt[test]))
        # at most half of the target's sentences (and at least one) go to enrollment
        assert len(enroll_sents) <= max(1, len({txt[i] for i in mine}) // 2)
    else:
        avail = Counter(emo[sorted(mine)].tolist())
        assert counts == {e: min(shots, avail[e] - 1) for e in avail if min(shots, avail[e] - 1) > 0}
        assert e_set | t_set == mine
        assert set(emo[test]) == set(avail)  # every emotion keeps a test clip


def test_ravdess_four_shots_need_the_cap(ravdess):
    spk = [r.speaker for r in ravdess]
    txt = [r.text_id for r in ravdess]
    with pytest.raises(TooFewClipsError, match="leaving none"):
        personalization_split(spk, ravdess.labels(), "ravdess_03", shots=4, text_ids=txt)
    with pytest.raises(ValueError, match="shortfall"):
        personalization_split(spk, ravdess.labels(), "ravdess_03", shots=4, text_ids=txt, shortfall="some")
    enroll, test = personalization_split(spk, ravdess.labels(), "ravdess_03", shots=4, text_ids=txt, shortfall="cap")
    counts = Counter(ravdess.labels()[i] for i in enroll)
    # neutral has one intensity x two repetitions per statement: 2 clips; the others 4
    assert counts["neutral"] == 2 and all(n == 4 for e, n in counts.items() if e != "neutral")
    assert len({txt[i] for i in enroll}) == 1 and {txt[i] for i in enroll}.isdisjoint({txt[i] for i in test})


def test_personalization_errors():
    spk = ["a", "a", "a", "b"]
    emo = ["sad", "sad", "angry", "sad"]
    with pytest.raises(UnknownSpeakerError, match="'zz'.*known speakers: \\['a', 'b'\\]"):
        personalization_split(spk, emo, "zz", shots=1)
    with pytest.raises(KeyError):  # also a KeyError for generic handlers
        personalization_split(spk, emo, "zz", shots=1)
    with pytest.raises(TooFewClipsError, match=r"angry \(1 clips\)"):
        personalization_split(spk, emo, "a", shots=2)
    with pytest.raises(ValueError, match="labels has 3 entries, expected 4"):
        personalization_split(spk, emo[:3], "a", shots=1)
    with pytest.raises(ValueError, match="shots must be >= 1"):
        personalization_split(spk, emo, "a", shots=0)
    with pytest.raises(TypeError, match="shots must be a positive integer"):
        personalization_split(spk, emo, "a", shots=1.5)
    with pytest.raises(ValueError, match="known for 1 of target 'a'"):
        personalization_split(spk, emo, "a", shots=1, text_ids=["t1", None, None, "t1"])
    with pytest.raises(TypeError):
        speaker_kfold("abc", 2)
    with pytest.raises(ValueError, match="empty"):
        speaker_kfold([], 2)


def test_speaker_ids_are_compared_as_strings():
    enroll, test = personalization_split([1, 1, 2], ["sad", "sad", "sad"], 1, shots=1)
    assert set(enroll.tolist()) | set(test.tolist()) == {0, 1}


# ---- real corpora -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ravdess", "emodb", "emovo", "urdu"])
def test_kfold_on_real_corpora(name, request):
    corpus = request.getfixturevalue(name)
    spk = np.array([r.speaker for r in corpus], dtype=object)
    k = min(5, len(corpus.speakers))
    folds = speaker_kfold(spk, k, seed=1)
    assert sum(len(te) for _, te in folds) == len(corpus)
    for tr, te in folds:
        assert set(spk[tr]).isdisjoint(spk[te])


def test_ravdess_sentence_disjoint_personalization(ravdess):
    spk = [r.speaker for r in ravdess]
    emo = ravdess.labels()
    txt = [r.text_id for r in ravdess]
    for target in ravdess.speakers[:4]:
        enroll, test = personalization_split(spk, emo, target, shots=2, text_ids=txt, seed=3)
        enroll_txt = {txt[i] for i in enroll}
        test_txt = {txt[i] for i in test}
        # two statements: one for enrollment, the other (all 30 of the target's clips) for test
        assert len(enroll_txt) == 1 and len(test_txt) == 1 and enroll_txt != test_txt
        assert len(test) == sum(1 for i, s in enumerate(spk) if s == target and txt[i] in test_txt)
        assert Counter(emo[i] for i in enroll) == {e: 2 for e in ravdess.emotions}


def test_emovo_enrollment_uses_few_sentences(emovo):
    spk = [r.speaker for r in emovo]
    txt = [r.text_id for r in emovo]
    enroll, test = personalization_split(spk, emovo.labels(), "emovo_m1", shots=1, text_ids=txt)
    # EMOVO speakers read every sentence in every emotion: one sentence suffices for one shot each
    assert len({txt[i] for i in enroll}) == 1
    assert {txt[i] for i in enroll}.isdisjoint({txt[i] for i in test})
