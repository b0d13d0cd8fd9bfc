"""Speaker-disjoint evaluation splits, as pure functions on label arrays.

Every function takes per-clip arrays (``speakers``, ``labels``, ``text_ids``; all length ``N``) and
returns numpy ``int64`` index arrays into them, sorted ascending. Results depend only on the inputs
and ``seed``, never on global random state.

- ``speaker_kfold``: k folds with no speaker in both train and test (speaker-independent protocol).
- ``leave_one_speaker_out``: one fold per speaker.
- ``personalization_split``: for one target speaker, ``shots`` enrollment clips per emotion and
  the rest of that speaker's clips for test, optionally with disjoint sentences (text ids) so that
  the model cannot match the spoken words instead of the emotion.

Example:
    >>> import numpy as np
    >>> spk = np.array(["a", "a", "b", "b", "c", "c"])
    >>> [(tr.tolist(), te.tolist()) for tr, te in speaker_kfold(spk, n_splits=3, seed=0)][0]
    ([0, 1, 2, 3], [4, 5])
    >>> emo = np.array(["sad", "sad", "sad", "sad", "angry", "angry"])
    >>> enroll, test = personalization_split(np.array(["a"] * 6), emo, "a", shots=1)
    >>> len(enroll), len(test)
    (2, 4)
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from adapt.errors import TooFewClipsError, UnknownSpeakerError

__all__ = ["speaker_kfold", "leave_one_speaker_out", "personalization_split", "SHORTFALLS"]


def _as_1d(values, what: str, n: int | None = None) -> np.ndarray:
    """Validate a per-clip array; strings are compared as strings whatever the input type."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{what} must be a sequence with one entry per clip, got a single {type(values).__name__}")
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1D (one entry per clip), got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{what} has {len(arr)} entries, expected {n} (one per clip)")
    return arr


def _speaker_array(speakers) -> np.ndarray:
    arr = _as_1d(speakers, "speakers")
    if len(arr) == 0:
        raise ValueError("speakers is empty: nothing to split")
    if any(s is None for s in arr):
        raise ValueError("speakers contains None: every clip needs a speaker id")
    return np.array([str(s) for s in arr], dtype=object)


def _index(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask).astype(np.int64)


def speaker_kfold(speakers: Sequence, n_splits: int = 5, *, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Speaker-disjoint k-fold: each speaker's clips are in exactly one test fold.

    Speakers are shuffled with ``seed``, then assigned greedily (largest first) to the fold with the
    fewest clips, so folds are balanced in clips as well as speakers.

    Arguments:
        speakers: ``(N,)`` speaker id per clip.
        n_splits: number of folds, ``2 <= n_splits <= number of speakers``.
        seed: shuffles the speaker order (ties between equally sized speakers).

    Returns:
        ``n_splits`` pairs ``(train_idx, test_idx)`` of sorted int64 arrays; the test folds partition
        ``range(N)``.

    Example:
        >>> folds = speaker_kfold(["a", "a", "b", "c", "c", "d"], n_splits=2)
        >>> sorted(len(te) for _, te in folds)
        [3, 3]
    """
    spk = _speaker_array(speakers)
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)):
        raise TypeError(f"n_splits must be an integer, got {n_splits!r}")
    uniq = sorted(set(spk.tolist()))
    if not 2 <= n_splits <= len(uniq):
        raise ValueError(f"n_splits={n_splits} needs 2 <= n_splits <= number of speakers ({len(uniq)})")
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    sizes = Counter(spk.tolist())
    # stable sort keeps the shuffled order among equal sizes, so the seed decides the ties
    order.sort(key=lambda s: -sizes[s])
    load = [0] * n_splits
    fold_of: dict[str, int] = {}
    for s in order:
        f = min(range(n_splits), key=lambda k: (load[k], k))
        fold_of[s] = f
        load[f] += sizes[s]
    folds = np.array([fold_of[s] for s in spk.tolist()])
    return [(_index(folds != f), _index(folds == f)) for f in range(n_splits)]


def leave_one_speaker_out(speakers: Sequence) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """One fold per speaker, in sorted speaker order: ``(speaker, train_idx, test_idx)``.

    Example:
        >>> [(s, te.tolist()) for s, _, te in leave_one_speaker_out(["b", "a", "b"])]
        [('a', [1]), ('b', [0, 2])]
    """
    spk = _speaker_array(speakers)
    uniq = sorted(set(spk.tolist()))
    if len(uniq) < 2:
        raise ValueError(f"leave-one-speaker-out needs at least 2 speakers, got {uniq}")
    return [(s, _index(spk != s), _index(spk == s)) for s in uniq]


def _check_shots(shots) -> int:
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)):
        raise TypeError(f"shots must be a positive integer, got {shots!r}")
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    return int(shots)


def _shortage(labels: np.ndarray, idx: np.ndarray, emotions: list[str], shots: int) -> dict[str, int]:
    """Emotions with fewer than ``shots`` clips among ``idx``, with how many they have."""
    have = Counter(labels[idx].tolist())
    return {e: have.get(e, 0) for e in emotions if have.get(e, 0) < shots}


def _achieved(labels: np.ndarray, idx: np.ndarray, emotions: list[str], shots: int) -> tuple[int, ...]:
    """Enrollment clips each emotion can get from ``idx``: ``min(shots, available)``."""
    have = Counter(labels[idx].tolist())
    return tuple(min(shots, have.get(e, 0)) for e in emotions)


SHORTFALLS = ("fail", "cap")


def personalization_split(
    speakers: Sequence,
    labels: Sequence,
    target: str,
    *,
    shots: int,
    text_ids: Sequence | None = None,
    sentence_disjoint: bool = True,
    shortfall: str = "fail",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Enrollment and test clips of one target speaker (the personalization protocol).

    Enrollment holds ``shots`` clips of every emotion the target speaker has; test holds the rest
    of the target's clips. The two never overlap, and neither contains another speaker's clip (the
    caller trains any global model on ``speakers != target``).

    With ``sentence_disjoint=True`` and known text ids, enrollment draws only from a set of
    sentences (chosen greedily in a seeded order until every emotion has ``shots`` clips, then
    pruned of sentences that turned out redundant) and test holds only clips of the *other*
    sentences; target clips of enrollment sentences that were not drawn are left out of both.
    Where the target's text ids are all ``None`` (a corpus without fixed texts) the split is by
    clip, and every target clip is in enrollment or test.

    ``shortfall`` says what happens when that is impossible (an emotion has fewer than ``shots``
    clips, or they would take every sentence): ``"fail"`` raises ``TooFewClipsError``; ``"cap"``
    (the one policy of the demo, the few-shot protocols and the application benchmarks) enrolls
    what exists, up to ``shots`` clips per emotion: sentence-disjoint, it draws sentences in a
    seeded order until every emotion has ``shots`` clips or half of the target's sentences are
    taken (e.g. RAVDESS has 2 neutral clips per statement, so 4 shots give neutral 2); split by
    clip, it leaves at least one clip of every emotion for test.

    Arguments:
        speakers: ``(N,)`` speaker id per clip.
        labels: ``(N,)`` emotion per clip.
        target: the speaker to personalize to.
        shots: enrollment clips per emotion (K).
        text_ids: ``(N,)`` sentence id per clip, ``None`` entries where unknown.
        sentence_disjoint: keep enrollment and test sentences apart (needs ``text_ids``).
        shortfall: ``"fail"`` or ``"cap"`` (see above).
        seed: which clips and sentences are drawn.

    Returns:
        ``(enroll_idx, test_idx)``: sorted int64 index arrays into the inputs.

    Raises:
        UnknownSpeakerError: ``target`` is not among ``speakers`` (a ``KeyError``).
        TooFewClipsError: ``shortfall="fail"`` and some emotion has fewer than ``shots`` clips (the
            message names it) or no sentence or clip is left for test; ``"cap"`` and the target has
            a single sentence (no sentence-disjoint split exists).
        ValueError: mismatched lengths, text ids known for only some of the target's clips, or an
            unknown ``shortfall``.

    Example:
        >>> spk = ["a"] * 4 + ["b"] * 2
        >>> emo = ["sad", "sad", "angry", "angry", "sad", "angry"]
        >>> txt = ["t1", "t2", "t1", "t2", "t1", "t1"]
        >>> enroll, test = personalization_split(spk, emo, "a", shots=1, text_ids=txt, seed=0)
        >>> sorted(set(txt[i] for i in enroll)).__len__(), set(txt[i] for i in enroll) & set(txt[i] for i in test)
        (1, set())
    """
    if shortfall not in SHORTFALLS:
        raise ValueError(f"shortfall must be one of {SHORTFALLS}, got {shortfall!r}")
    spk = _speaker_array(speakers)
    lab = _as_1d(labels, "labels", len(spk))
    shots = _check_shots(shots)
    target_key = str(target)
    mine = np.flatnonzero(spk == target_key)
    if len(mine) == 0:
        known = sorted(set(spk.tolist()))
        raise UnknownSpeakerError(f"unknown target speaker {target!r}; known speakers: {known}")
    lab = np.array([str(x) for x in lab], dtype=object)
    txt = _target_texts(text_ids, len(spk), mine, target) if sentence_disjoint else None
    try:
        return _strict_split(spk, lab, txt, target_key, mine, shots, seed)
    except TooFewClipsError:
        if shortfall == "fail":
            raise
    return _capped_split(lab, txt, target, mine, shots, seed)


def _target_texts(text_ids, n: int, mine: np.ndarray, target) -> np.ndarray | None:
    """Text ids as str (``None`` when the target has none: split by clip)."""
    if text_ids is None:
        return None
    txt = _as_1d(text_ids, "text_ids", n)
    known_txt = [t is not None for t in txt[mine]]
    if any(known_txt) and not all(known_txt):
        raise ValueError(
            f"text_ids are known for {sum(known_txt)} of target {target!r}'s {len(mine)} clips; "
            "sentence-disjoint splitting needs all or none"
        )
    if not any(known_txt):
        return None
    return np.array([str(t) for t in txt], dtype=object)


def _strict_split(spk, lab, txt, target_key, mine, shots, seed) -> tuple[np.ndarray, np.ndarray]:
    """``shots`` clips of every emotion, or ``TooFewClipsError``."""
    emotions = sorted(set(lab[mine].tolist()))
    rng = np.random.default_rng(seed)
    short = _shortage(lab, mine, emotions, shots)
    if short:
        raise TooFewClipsError(
            f"target {target_key!r} has too few clips for {shots} shots of: "
            + ", ".join(f"{e} ({n} clips)" for e, n in short.items())
            + " (shortfall='cap' enrolls what there is)"
        )
    if txt is None:
        pool, test_pool = mine, None
    else:
        chosen, pool = _choose_sentences(spk, lab, txt, target_key, mine, emotions, shots, rng)
        test_pool = np.flatnonzero((spk == target_key) & ~np.isin(txt, chosen))
        if len(test_pool) == 0:
            raise TooFewClipsError(
                f"target {target_key!r}: {shots} shots per emotion need all of its sentences, leaving none "
                "for a sentence-disjoint test set (lower shots, shortfall='cap', or sentence_disjoint=False)"
            )
    enroll = []
    for e in emotions:
        cand = pool[lab[pool] == e]
        enroll.extend(cand[rng.permutation(len(cand))[:shots]].tolist())
    enroll_idx = np.array(sorted(enroll), dtype=np.int64)
    test_idx = np.setdiff1d(mine, enroll_idx) if test_pool is None else np.asarray(test_pool)
    if len(test_idx) == 0:
        raise TooFewClipsError(
            f"target {target_key!r}: {shots} shots of each of {emotions} take all {len(mine)} of its clips, "
            "leaving none for test"
        )
    return enroll_idx, test_idx.astype(np.int64)


def _choose_sentences(spk, lab, txt, target_key, mine, emotions, shots, rng) -> tuple[list[str], np.ndarray]:
    """Sentences (greedy in a seeded order, then pruned of redundant ones) whose clips give every
    emotion ``shots`` enrollment candidates; returns them and their clip indices."""
    sentences = sorted(set(txt[mine].tolist()))
    chosen: list[str] = []
    pool = np.array([], dtype=np.int64)
    for i in rng.permutation(len(sentences)):
        before = _shortage(lab, pool, emotions, shots)
        if not before:
            break
        cand = np.flatnonzero((spk == target_key) & (txt == sentences[i]))
        # only take sentences that help a short emotion, to leave as many as possible for test
        if any(e in before for e in lab[cand].tolist()):
            chosen.append(sentences[i])
            pool = np.sort(np.concatenate([pool, cand]))
    # drop sentences made redundant by later picks: each one kept out goes to the test set
    for sent in list(chosen):
        rest = [c for c in chosen if c != sent]
        trial = np.flatnonzero((spk == target_key) & np.isin(txt, rest))
        if rest and _achieved(lab, trial, emotions, shots) == _achieved(lab, pool, emotions, shots):
            chosen, pool = rest, trial
    return chosen, pool


def _capped_split(lab, txt, target, mine, shots, seed) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``shots`` clips per emotion (the ``shortfall="cap"`` policy, see ``personalization_split``)."""
    rng = np.random.default_rng(seed)
    emotions = set(lab[mine].tolist())
    if txt is not None:
        sentences = sorted({str(t) for t in txt[mine]})
        if len(sentences) < 2:
            raise TooFewClipsError(f"target {target!r} has a single sentence: no sentence-disjoint split")
        chosen: list[str] = []
        for i in rng.permutation(len(sentences)):
            pool = mine[np.isin(txt[mine], chosen)]
            counts = {e: int((lab[pool] == e).sum()) for e in emotions}
            if chosen and (min(counts.values()) >= shots or len(chosen) >= len(sentences) // 2):
                break
            chosen.append(sentences[i])
        pool = mine[np.isin(txt[mine], chosen)]
        test = np.sort(mine[~np.isin(txt[mine], chosen)])
        caps = {e: shots for e in emotions}
    else:
        pool, test = mine, None
        # leave at least one clip of every emotion for the test set
        caps = {e: min(shots, int((lab[mine] == e).sum()) - 1) for e in emotions}
    enroll = []
    for e in sorted(caps):
        cand = pool[lab[pool] == e]
        enroll.extend(cand[rng.permutation(len(cand))[:max(caps[e], 0)]].tolist())
    enroll_idx = np.array(sorted(enroll), dtype=np.int64)
    test_idx = np.setdiff1d(mine, enroll_idx) if test is None else test
    return enroll_idx, np.asarray(test_idx, dtype=np.int64)
