"""Lifelong personalization on cached embeddings: new emotions, days of use, feedback to the global head.

Three protocols, all through the public ``Personalizer`` ``*_embeddings`` API (what a deployment
calls), on a ``scenarios.tables.FeatureTable``:

* ``new_emotion_users`` — the new-emotion protocol of ``scenarios.fewshot.new_emotion`` (speaker
  5-fold; every emotion held out of the head in turn; old-class UA on the held-out speakers before
  and after, with the new class among the possible predictions; speakers standardized from their
  clips without labels), on the application path: each held-out speaker is a user who
  ``observe``s their clips and then ``add_emotion``s the held-out emotion from ``K`` of their own
  clips; scored on their other clips. ``variants`` scores several ``Shrinkage`` settings of the
  same fitted heads (``own_tau`` / ``own_offset``: how a user's own emotion is scored), and
  ``select_own_emotion`` chooses one by leaving the target corpus out (training corpora only).
* ``lifelong_users`` — days of use: each held-out speaker lives through ``days`` days; every day
  brings unlabelled clips (``observe``) and a few corrections (``update``); on ``new_day`` the user
  adds an emotion the head lacks (``add_emotion`` with ``K`` clips). After every day: UA on the
  user's held-out clips of every emotion so far, UA on the earlier emotions (its drop from its
  best earlier value is the forgetting), new-emotion recall. Test clips are sentence-disjoint from
  the clips of the days where the corpus has text ids (half the sentences each). ``seen``: the
  head is trained on every corpus of the table but the user's speaker fold; ``unseen``: on the
  other corpora only (leave one corpus out).
* ``feedback_transfer`` — the effect of ``adapt.personal.feedback`` on the *next* users of a corpus
  the head never saw: half the corpus's speakers correct ``K`` clips per emotion and consent, their
  statistics are folded into a new head version (gated on a frozen set of held-out speakers of the
  training corpora), and the other half is scored unenrolled before and after; the frozen set's
  UA before and after is the forgetting. ``select_feedback`` chooses the aggregator's settings by
  leaving one *training* corpus out.

Example:
    >>> from scenarios.tables import FeatureTable                                  # doctest: +SKIP
    >>> table = FeatureTable.from_corpora(["ravdess", "emodb", "emovo"])           # doctest: +SKIP
    >>> out = new_emotion_users(table, "emodb", shots=(5,))                        # doctest: +SKIP
    >>> out["base"][5]["old_delta"], out["base"][5]["new_recall"]                 # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from adapt.metrics import per_class_recall, unweighted_average_recall as ua
from adapt.personal import GlobalHead, Personalizer, PersonalizerConfig, Shrinkage, UserState

from .splits import speaker_kfold

__all__ = ["new_emotion_users", "select_own_emotion", "OWN_GRID", "BEFORE", "LifelongConfig", "UserDays", "lifelong_users",
           "summarize_days", "FeedbackResult", "feedback_transfer", "select_feedback", "FEEDBACK_GRID"]

#: ``add_emotion`` before issue 18: a user's own emotion scored by its plain mean
BEFORE = dict(own_tau=0.0, own_offset=0.0, own_centre=0.0)
#: candidate (own_tau, own_offset, own_centre) settings for a user's own emotion
OWN_GRID: tuple[dict, ...] = tuple(dict(own_tau=t, own_offset=b, own_centre=c) for c in (0.0, 1.0)
                                   for t in (0.0, 1.0, 2.0, 5.0) for b in (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0))


def _fit(table, rows: np.ndarray, shrinkage: Shrinkage | None = None, *, dim: int = 256,
         lda_shrinkage: float = 0.3) -> GlobalHead:
    return GlobalHead.fit(table.X[rows], table.y[rows], speakers=table.speakers[rows], corpora=table.corpora[rows],
                          dim=dim, lda_shrinkage=lda_shrinkage, shrinkage=shrinkage)


def _state(p: Personalizer, user: str) -> UserState:
    return UserState.from_json(p.export_user(user)["state"])


def _predict(head: GlobalHead, X: np.ndarray, st: UserState | None, labels: Sequence[str]) -> np.ndarray:
    classes, logits = head.predict_logits(X, st, None, list(labels))
    return np.asarray(classes)[np.argmax(logits, axis=1)]


def _name(v: Mapping) -> str:
    return "base" if not v else ",".join(f"{k}={v[k]:g}" for k in sorted(v))


def new_emotion_users(table, corpus: str, *, shots: Sequence[int] = (2, 5), folds: int = 5, seed: int = 0,
                      variants: Sequence[Mapping] = ({},), base: Shrinkage | None = None,
                      ) -> dict[str, dict[int, dict]]:
    """The new-emotion protocol on the application path (module docstring), for ``corpus`` of ``table``.

    The head of each (emotion, fold) is trained on the fold's training speakers of ``corpus`` only
    (as ``scenarios.fewshot.new_emotion``). A held-out speaker with fewer than ``K + 2`` clips of
    the held-out emotion is skipped for that ``K``. Returns ``{variant name: {K: {"old_before",
    "old_after", "old_delta", "new_recall", "ua", "users"}}}``; a variant is a dict of ``Shrinkage``
    fields on top of ``base`` (``{}`` is ``base`` itself, named ``"base"``; default: the shipped
    ``Shrinkage()``; ``BEFORE`` gives ``add_emotion`` as it was before issue 18). ``old_*`` are UA
    over the pooled old-class test clips; ``new_recall`` the mean over (emotion, fold) of the
    recall of the new class.
    """
    base = base or Shrinkage()
    rows = np.flatnonzero(np.asarray(table.corpora).astype(str) == corpus)
    if not len(rows):
        raise KeyError(f"corpus {corpus!r} is not in the table")
    y, spk = table.y.astype(str), table.speakers.astype(str)
    emotions = sorted(set(y[rows].tolist()))
    names = [_name(v) for v in variants]
    acc = {n: {k: {"yt": [], "yp": [], "old_t": [], "before": [], "after": [], "new": [], "users": 0} for k in shots}
           for n in names}
    rng = np.random.default_rng(seed)
    cfg = PersonalizerConfig(min_new_emotion_clips=1)
    for e in emotions:
        for tr, te in speaker_kfold(spk[rows], n_splits=folds, seed=0):
            tr, te = rows[tr], rows[te]
            head = _fit(table, tr[y[tr] != e], base)
            heads = {n: head if not v else replace(head, shrinkage=replace(base, **v)) for n, v in zip(names, variants)}
            old_labels = [c for c in emotions if c != e and c in head.classes]
            p = Personalizer(None, head, ":memory:", config=cfg)
            per = {n: {k: ([], []) for k in shots} for n in names}
            for s in dict.fromkeys(spk[te].tolist()):
                idx = te[spk[te] == s]
                e_rows = rng.permutation(idx[y[idx] == e])
                old = idx[np.isin(y[idx], old_labels)]
                for k in shots:
                    if len(e_rows) < k + 2:
                        continue
                    user = f"{s}-k{k}"
                    # the user's clips but the K new-emotion ones, observed without labels
                    p.observe_embeddings(user, table.X[np.setdiff1d(idx, e_rows[:k])])
                    before = _predict(head, table.X[old], _state(p, user), old_labels)
                    p.add_emotion_embeddings(user, e, table.X[e_rows[:k]])
                    st = _state(p, user)
                    test = np.concatenate([old, e_rows[k:]])
                    for n in names:
                        pred = _predict(heads[n], table.X[test], st, old_labels + [e])
                        a = acc[n][k]
                        a["yt"].append(y[test]), a["yp"].append(pred)
                        a["old_t"].append(y[old]), a["before"].append(before), a["after"].append(pred[:len(old)])
                        a["users"] += 1
                        per[n][k][0].append(y[test]), per[n][k][1].append(pred)
            for n in names:
                for k in shots:
                    if per[n][k][0]:
                        yt, yp = np.concatenate(per[n][k][0]), np.concatenate(per[n][k][1])
                        acc[n][k]["new"].append(per_class_recall(yt, yp, labels=[e])[e])
    out: dict[str, dict[int, dict]] = {}
    for n in names:
        out[n] = {}
        for k in shots:
            a = acc[n][k]
            if not a["yt"]:
                continue
            cat = {m: np.concatenate(a[m]) for m in ("yt", "yp", "old_t", "before", "after")}
            ob, oa = ua(cat["old_t"], cat["before"]), ua(cat["old_t"], cat["after"])
            out[n][k] = {"old_before": float(ob), "old_after": float(oa), "old_delta": float(oa - ob),
                         "new_recall": float(np.nanmean(a["new"])), "ua": float(ua(cat["yt"], cat["yp"])),
                         "users": int(a["users"])}
    return out


def select_own_emotion(results: Mapping[str, Mapping[str, Mapping[int, dict]]], target: str | None, *, k: int = 5,
                       tolerance: float = 0.01) -> str:
    """The variant for ``target`` chosen on the *other* corpora of ``results`` (``{corpus:
    new_emotion_users(...)}``; ``target=None``: on all of them): among the variants whose mean
    old-class change at ``K=k`` is no worse than ``-tolerance``, the one with the highest mean
    new-class recall; if none, the one with the smallest mean drop. The rule of the few-shot
    ``-cal`` heads (keep the old classes within 1 point on training speakers), applied to the
    whole (``own_tau``, ``own_offset``, ``own_centre``) grid."""
    others = [c for c in results if c != target]
    if not others:
        raise ValueError(f"selection for {target!r} needs at least one other corpus")
    names = list(results[others[0]])
    delta = {n: float(np.mean([results[c][n][k]["old_delta"] for c in others])) for n in names}
    recall = {n: float(np.mean([results[c][n][k]["new_recall"] for c in others])) for n in names}
    ok = [n for n in names if delta[n] >= -tolerance - 1e-12]
    return max(ok, key=lambda n: (recall[n], delta[n])) if ok else max(names, key=lambda n: delta[n])


# -- days of use ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LifelongConfig:
    """Sizes of the days protocol. ``corrections``: labelled clips per day (``update``);
    ``new_day``: the day (1-based) the new emotion is added with ``shots`` clips."""

    days: int = 10
    corrections: int = 2
    new_day: int = 5
    shots: tuple[int, ...] = (2, 5)
    folds: int = 5
    seed: int = 0
    shrinkage: Shrinkage = field(default_factory=Shrinkage)


@dataclass(frozen=True)
class UserDays:
    """One simulated user's curves, one value per day: ``ua`` (all emotions so far), ``old_ua``
    (the emotions known before the new one), ``new_recall`` (nan before ``new_day``)."""

    corpus: str
    speaker: str
    setting: str           # "seen" or "unseen"
    shots: int
    new_emotion: str
    ua: tuple[float, ...]
    old_ua: tuple[float, ...]
    new_recall: tuple[float, ...]
    new_day: int = 0

    @property
    def add_drop(self) -> float:
        """How far ``old_ua`` fell on the day the new emotion was added (vs the day before; 0 if it rose)."""
        if not 2 <= self.new_day <= len(self.old_ua):
            return 0.0
        return float(max(0.0, self.old_ua[self.new_day - 2] - self.old_ua[self.new_day - 1]))

    @property
    def max_drop(self) -> float:
        """Largest drop of ``old_ua`` below its best earlier value (the user's forgetting)."""
        best, drop = -np.inf, 0.0
        for v in self.old_ua:
            drop = max(drop, best - v)
            best = max(best, v)
        return float(drop)


def _life_test_split(table, idx: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """(clips of the days, held-out test clips) of one speaker: half the sentences each where
    text ids are known, else half the clips."""
    txt = table.text_ids[idx]
    known = [t for t in txt if t is not None]
    if len(set(known)) >= 2 and len(known) == len(txt):
        texts = sorted(set(known))
        test_texts = set(rng.permutation(texts)[:len(texts) // 2].tolist())
        is_test = np.array([t in test_texts for t in txt])
    else:
        is_test = np.zeros(len(idx), bool)
        is_test[rng.permutation(len(idx))[:len(idx) // 2]] = True
    return idx[~is_test], idx[is_test]


def lifelong_users(table, corpus: str, setting: str = "seen", config: LifelongConfig | None = None,
                   *, speakers: Sequence[str] | None = None) -> list[UserDays]:
    """The days protocol (module docstring) for the speakers of ``corpus``; one ``UserDays`` per
    (speaker, K). The new emotion of a fold is the fold's turn in the corpus's emotions (fold i
    gets emotion i mod C), held out of that fold's head entirely."""
    config = config or LifelongConfig()
    if setting not in ("seen", "unseen"):
        raise ValueError(f"setting must be 'seen' or 'unseen', got {setting!r}")
    corpora = np.asarray(table.corpora).astype(str)
    rows = np.flatnonzero(corpora == corpus)
    if not len(rows):
        raise KeyError(f"corpus {corpus!r} is not in the table")
    y, spk = table.y.astype(str), table.speakers.astype(str)
    emotions = sorted(set(y[rows].tolist()))
    rng = np.random.default_rng(config.seed)
    out: list[UserDays] = []
    for f, (_, te) in enumerate(speaker_kfold(spk[rows], n_splits=config.folds, seed=config.seed)):
        held = set(spk[rows[te]].tolist())
        if speakers is not None:
            held &= set(speakers)
        if not held:
            continue
        e = emotions[f % len(emotions)]
        pool = np.flatnonzero(corpora != corpus) if setting == "unseen" else np.flatnonzero(~np.isin(spk, list(held)))
        head = _fit(table, pool[y[pool] != e], config.shrinkage)
        old_labels = [c for c in emotions if c != e and c in head.classes]
        for s in sorted(held):
            idx = rows[spk[rows] == s]
            life, test = _life_test_split(table, idx, rng)
            life_e = rng.permutation(life[y[life] == e])
            life_old = rng.permutation(life[np.isin(y[life], old_labels)])
            test_old, test_e = test[np.isin(y[test], old_labels)], test[y[test] == e]
            if not len(test_old) or not len(test_e):
                continue
            days = np.array_split(life_old, config.days)
            for k in config.shots:
                if len(life_e) < k:
                    continue
                p = Personalizer(None, head, ":memory:", config=PersonalizerConfig(min_new_emotion_clips=1))
                curves: dict[str, list[float]] = {"ua": [], "old": [], "new": []}
                for d, day in enumerate(days, start=1):
                    if len(day):
                        # the day's clips; a few of them are then corrected (labelled) instead
                        if len(day) > config.corrections:
                            p.observe_embeddings(s, table.X[day[config.corrections:]])
                        for r in day[:config.corrections]:
                            if p.has_user(s):
                                p.update_embeddings(s, table.X[r], y[r])
                            else:
                                p.enroll_embeddings(s, table.X[r:r + 1], [y[r]])
                    if d == config.new_day:
                        p.add_emotion_embeddings(s, e, table.X[life_e[:k]])
                    added = d >= config.new_day
                    st = _state(p, s) if p.has_user(s) else None
                    labels = old_labels + ([e] if added else [])
                    t_all = np.concatenate([test_old, test_e]) if added else test_old
                    pred = _predict(head, table.X[t_all], st, labels)
                    curves["ua"].append(float(ua(y[t_all], pred)))
                    curves["old"].append(float(ua(y[test_old], pred[:len(test_old)])))
                    curves["new"].append(float(np.mean(pred[len(test_old):] == e)) if added else float("nan"))
                out.append(UserDays(corpus, s, setting, k, e, tuple(curves["ua"]), tuple(curves["old"]),
                                    tuple(curves["new"]), config.new_day))
    return out


def summarize_days(users: Sequence[UserDays]) -> dict[tuple[str, str, int], dict]:
    """Per (corpus, setting, K): mean curves over users, the largest and median forgetting,
    the share of users whose earlier-emotion UA never dropped by more than 2 points, and the
    same for the day the new emotion was added (``add_drop_max``, ``add_within_2``)."""
    out: dict[tuple[str, str, int], dict] = {}
    for key in dict.fromkeys((u.corpus, u.setting, u.shots) for u in users):
        mine = [u for u in users if (u.corpus, u.setting, u.shots) == key]
        drops = np.array([u.max_drop for u in mine])
        new = np.array([u.new_recall for u in mine], float)
        # days before the new emotion have no recall (nan for every user)
        new_mean = [float(np.mean(col[np.isfinite(col)])) if np.isfinite(col).any() else float("nan") for col in new.T]
        out[key] = {"users": len(mine), "ua": np.mean([u.ua for u in mine], axis=0).tolist(),
                    "old_ua": np.mean([u.old_ua for u in mine], axis=0).tolist(),
                    "new_recall": new_mean,
                    "max_drop": float(drops.max()), "median_drop": float(np.median(drops)),
                    "within_2": float(np.mean(drops <= 0.02 + 1e-9)),
                    "add_drop_max": float(max(u.add_drop for u in mine)),
                    "add_within_2": float(np.mean([u.add_drop <= 0.02 + 1e-9 for u in mine]))}
    return out


# -- feedback to the global head ----------------------------------------------------------------
#: candidate aggregator settings (``FeedbackAggregator`` keyword arguments)
FEEDBACK_GRID: tuple[dict, ...] = tuple(dict(prior_clips=c, prior_speakers=k) for c in (20.0, 100.0, float("inf"))
                                        for k in (1.0, 2.0, 8.0))


@dataclass(frozen=True)
class FeedbackResult:
    """``feedback_transfer`` for one aggregator setting (``options``): unenrolled UA of the next
    users with the base head (``next_before``), with the candidate version (``next_candidate``)
    and with what serves after the gate (``next_after``: the candidate if accepted, else the base);
    ``gate`` as ``HeadVersion.gate`` (frozen-set UA per path: base / current / candidate)."""

    corpus: str
    options: dict
    next_before: float
    next_candidate: float
    next_after: float
    accepted: bool
    gate: dict
    feeders: int
    next_users: int

    @property
    def gain(self) -> float:
        """What the next users gained from the version that serves (0 when rejected)."""
        return self.next_after - self.next_before

    @property
    def forgetting(self) -> float:
        """The largest drop of the candidate below the base on any frozen-set path."""
        return max(v["base"] - v["candidate"] for v in self.gate["paths"].values())


def feedback_transfer(table, held_out: str, *, shots: int = 5, frozen_fraction: float = 0.25, seed: int = 0,
                      grid: Sequence[Mapping] = ({},)) -> list[FeedbackResult]:
    """Feedback from half of ``held_out``'s speakers, scored on the other half (module docstring).

    The base head is trained on the other corpora minus ``frozen_fraction`` of each one's speakers
    (the frozen set of earlier data the gate scores, each speaker with their corpus's label set).
    Feeders observe all their clips and correct ``shots`` clips per emotion; the next users are
    scored unenrolled (no profile) with the label set of ``held_out``'s emotions the head knows.
    One ``FeedbackResult`` per ``grid`` entry (``FeedbackAggregator`` keyword arguments, each
    folded from the same submissions into a fresh aggregator).
    """
    import tempfile

    from adapt.personal.feedback import FeedbackAggregator, FrozenSet

    corpora = np.asarray(table.corpora).astype(str)
    if held_out not in set(corpora.tolist()):
        raise KeyError(f"corpus {held_out!r} is not in the table")
    y, spk = table.y.astype(str), table.speakers.astype(str)
    rng = np.random.default_rng(seed)
    train, frozen = [], []
    for c in sorted(set(corpora.tolist()) - {held_out}):
        rows = np.flatnonzero(corpora == c)
        ss = sorted(set(spk[rows].tolist()))
        fz = set(rng.permutation(ss)[:max(1, int(round(len(ss) * frozen_fraction)))].tolist())
        frozen += rows[np.isin(spk[rows], list(fz))].tolist()
        train += rows[~np.isin(spk[rows], list(fz))].tolist()
    train, frozen = np.asarray(train), np.asarray(frozen)
    head = _fit(table, train)
    target = np.flatnonzero(corpora == held_out)
    labels = [c for c in sorted(set(y[target].tolist())) if c in head.classes]
    ss = sorted(set(spk[target].tolist()))
    perm = rng.permutation(ss)
    feeders, nexts = sorted(perm[:len(ss) // 2].tolist()), sorted(perm[len(ss) // 2:].tolist())
    fz = FrozenSet(table.X[frozen], y[frozen], spk[frozen], corpora[frozen])
    p = Personalizer(None, head, ":memory:", config=PersonalizerConfig(tenant="t"))
    states = {}
    for s in feeders:
        idx = rng.permutation(target[spk[target] == s])
        idx = idx[np.isin(y[idx], labels)]
        corr = np.asarray([r for c in labels for r in idx[y[idx] == c][:shots]], dtype=int)
        p.observe_embeddings(s, table.X[np.setdiff1d(idx, corr)])
        p.enroll_embeddings(s, table.X[corr], y[corr].tolist())
        states[s] = _state(p, s)
    nx = target[np.isin(spk[target], nexts) & np.isin(y[target], labels)]

    def next_ua(h: GlobalHead) -> float:
        return float(np.mean([ua(y[nx][spk[nx] == s], _predict(h, table.X[nx][spk[nx] == s], None, labels))
                              for s in nexts]))

    before, out = next_ua(head), []
    for opts in grid:
        with tempfile.TemporaryDirectory() as tmp:
            agg = FeedbackAggregator(tmp, head, fz, **{"min_users": 1, **dict(opts)})
            agg.set_tenant_policy("t", enabled=True)
            for s, st in states.items():
                agg.set_consent("t", s, True)
                agg.submit("t", s, st)
            cand = agg.candidate("t")
            version = agg.fold("t")
            out.append(FeedbackResult(held_out, dict(opts), before, next_ua(cand), next_ua(agg.head("t")),
                                      version.accepted, version.gate, len(feeders), len(nexts)))
    return out


def select_feedback(table, held_out: str, pool: Sequence[str], grid: Sequence[Mapping] = FEEDBACK_GRID,
                    **kwargs) -> tuple[dict, dict[str, float]]:
    """The aggregator setting for ``held_out`` chosen without it: ``feedback_transfer`` on the
    table without ``held_out``, each corpus of ``pool`` (but ``held_out``) held out in turn; the
    highest mean gain of the version that serves (a rejected candidate gains 0) wins.
    Returns ``(options, {setting name: mean gain})``."""
    inner = table.subset(np.asarray(table.corpora).astype(str) != held_out)
    gains: dict[str, list[float]] = {_name(g): [] for g in grid}
    for c in pool:
        if c == held_out:
            continue
        for r in feedback_transfer(inner, c, grid=grid, **kwargs):
            gains[_name(r.options)].append(r.gain)
    mean = {n: float(np.mean(v)) for n, v in gains.items()}
    best = max(grid, key=lambda g: mean[_name(g)])
    return dict(best), mean
