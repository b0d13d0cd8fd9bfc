"""Leave one corpus out (LOCO) on the application path: what a deployment gets on a corpus it never saw.

For each held-out corpus, the global head (``adapt.personal.GlobalHead``) is trained on the other
corpora only; then every speaker of the held-out corpus is tried as a new user of a new
deployment, through the public ``Personalizer`` API from cached embeddings. All conditions of one
speaker are scored on the same test clips (the test side of
``personalization_split(shots=max(shots), shortfall="cap")``: sentence-disjoint where the corpus
has text ids), with predictions restricted to the held-out corpus's emotions through the label-set
API (``predict_embeddings(..., labels=...)``):

* ``unenrolled`` — a user never seen;
* ``U<n>`` — after ``observe`` of n clips of the speaker without labels (drawn from the speaker's
  non-test clips);
* ``K<k>`` — after ``enroll`` of k labelled clips per emotion (the first k of the enrollment side;
  an emotion the global head lacks is added with ``add_emotion``);
* ``T+unenrolled`` / ``T+K<k>`` — the same inside a tenant whose profile was built
  (``enroll_tenant``) from ``tenant_shots`` clips per emotion of up to ``tenant_speakers`` *other*
  speakers of the held-out corpus;
* ``<recipe>-K<k>`` — an embedding-table recipe of ``scenarios.fewshot.recipes`` on the same
  splits (default ``linear-ft+norm``: a logistic head on speaker-standardized training corpora,
  fine-tuned per user on the shots with an L2-SP pull toward its weights), restricted to the
  enrolled emotions;
* ``fused-unenrolled`` / ``fused-K<k>`` — the first release's per-user model
  (``adapt.personal.FusedPrototypeHead``) on the same splits, for reference;
* ``ceiling`` (``within_corpus_ceiling``) — a head trained on the *other speakers of the same
  corpus* (speaker-folds), the test speaker standardized with their non-test clips (observed
  without labels): the within-corpus speaker-independent reference.

``summarize`` gives per corpus and condition the mean UA over speakers with a bootstrap CI over
speakers. Nothing here is tuned on the held-out corpus: the head's settings are arguments
(``UnseenConfig``), chosen by ``select_on_training_corpora`` (leave one *training* corpus out).

Example:
    >>> from scenarios.tables import FeatureTable                          # doctest: +SKIP
    >>> table = FeatureTable.from_corpora(["ravdess", "emodb", "emovo"])   # doctest: +SKIP
    >>> rows = loco_scores(table, "emovo")                                 # doctest: +SKIP
    >>> summarize(rows)["emovo"]["K5"]                                     # doctest: +SKIP
    (0.81, 0.77, 0.85, 6)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from adapt.errors import TooFewClipsError
from adapt.metrics import unweighted_average_recall as ua
from adapt.personal import FusedPrototypeHead, GlobalHead, Personalizer, PersonalizerConfig, Shrinkage, UserState

from ..splits import personalization_split, speaker_kfold

__all__ = ["UnseenConfig", "SpeakerScores", "fit_head", "loco_scores", "within_corpus_ceiling", "speaker_splits", "summarize",
           "select_on_training_corpora", "CONDITIONS"]


@dataclass(frozen=True)
class UnseenConfig:
    """The protocol's sizes and the head's settings (never chosen on the held-out corpus)."""

    unlabelled: tuple[int, ...] = (5, 10, 20)
    shots: tuple[int, ...] = (1, 2, 5)
    tenant_speakers: int = 10
    tenant_shots: int = 5
    ceiling_folds: int = 5
    dim: int = 256
    lda_shrinkage: float = 0.3
    shrinkage: Shrinkage = field(default_factory=Shrinkage)
    fused_reference: bool = True
    recipes: tuple[str, ...] = ("linear-ft+norm",)
    seed: int = 0


def CONDITIONS(config: UnseenConfig) -> list[str]:
    """The condition names of ``loco_scores`` rows, in report order."""
    ks = [f"K{k}" for k in config.shots]
    out = ["unenrolled"] + [f"U{u}" for u in config.unlabelled] + ks + ["T+unenrolled"] + [f"T+{k}" for k in ks]
    out += [f"{r}-K{max(config.shots)}" for r in config.recipes]
    return out + (["fused-unenrolled", f"fused-K{max(config.shots)}"] if config.fused_reference else [])


@dataclass(frozen=True)
class SpeakerScores:
    """UA of one held-out speaker under each condition (``nan``: the condition could not run)."""

    corpus: str
    speaker: str
    scores: dict[str, float]


def fit_head(table, rows: np.ndarray, config: UnseenConfig) -> GlobalHead:
    """The format-2 head on ``rows`` of ``table`` with ``config``'s settings."""
    return GlobalHead.fit(table.X[rows], table.y[rows], speakers=table.speakers[rows], corpora=table.corpora[rows],
                          dim=config.dim, lda_shrinkage=config.lda_shrinkage, shrinkage=config.shrinkage)


def _split(table, idx: np.ndarray, target: str, shots: int, seed: int):
    """(enrollment rows, test rows, non-test rows) of one speaker, as indices into ``table``; a
    speaker whose text ids are known for only some clips is split over the clips with one."""
    known = np.array([t is not None for t in table.text_ids[idx]])
    if known.any() and not known.all():
        idx = idx[known]
    e, t = personalization_split(table.speakers[idx], table.y[idx], target, shots=shots,
                                 text_ids=table.text_ids[idx], shortfall="cap", seed=seed)
    test = idx[t]
    return idx[e], test, idx[~np.isin(idx, test)]


def speaker_splits(table, rows: np.ndarray, shots: int, seed: int, speakers=None):
    """``(speaker, enrollment rows, test rows, non-test rows)`` for each speaker of ``rows``
    (indices into ``table``), in first-seen order or the order of ``speakers``; a speaker with
    too few clips for a split is skipped. The one loop behind the leave-one-corpus-out protocol,
    the within-corpus ceiling, and the calibration and fairness protocols (``scenarios.calibration``,
    ``scenarios.fairness``)."""
    rows = np.asarray(rows, dtype=int)
    for spk in dict.fromkeys(table.speakers[rows].tolist()) if speakers is None else speakers:
        idx = rows[table.speakers[rows] == spk]
        try:
            enroll, test, pool = _split(table, idx, spk, shots, seed)
        except TooFewClipsError:
            continue
        yield spk, enroll, test, pool


def _first_k(rows: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` rows of every emotion (the enrollment order is already seeded)."""
    keep = [r for c in dict.fromkeys(y[rows].tolist()) for r in rows[y[rows] == c][:k]]
    return np.asarray(keep, dtype=int)


def _enroll(p: Personalizer, user: str, X: np.ndarray, y: np.ndarray) -> None:
    """Enroll ``X``/``y``: known emotions with ``enroll``, others as the user's own (``add_emotion``)."""
    known = set(p.head.available_classes(None, p._tenant_state()))
    mask = np.isin(y, list(known))
    if mask.any():
        p.enroll_embeddings(user, X[mask], y[mask].tolist())
    for c in dict.fromkeys(y[~mask].tolist()):
        p.add_emotion_embeddings(user, c, X[y == c])


def _score(p: Personalizer, user: str, X: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> float:
    avail = set(p.head.available_classes(p._state(user) if p.has_user(user) else None, p._tenant_state()))
    labels = [c for c in classes if c in avail]
    return float(ua(y, [r.label for r in p.predict_embeddings(user, X, labels=labels)]))


def _fused_scores(table, train: np.ndarray, splits: dict, classes: list[str], k: int) -> dict[str, dict]:
    """The first release's model (format 1) on the same splits: unenrolled and K=k."""
    head = FusedPrototypeHead.fit(table.X[train], table.y[train], speakers=table.speakers[train], linear=True,
                                  C=0.1, dim=256)
    out: dict[str, dict] = {}
    for spk, (enroll, test, _) in splits.items():
        Xt, yt = head.project(table.X[test]), table.y[test]
        cols = [i for i, c in enumerate(head.classes) if c in classes]
        glob = head.predict_proba_global(Xt)[:, cols]
        res = {"fused-unenrolled": float(ua(yt, np.asarray(head.classes)[cols][glob.argmax(1)]))}
        e = _first_k(enroll, table.y, k)
        st = UserState.empty(head.dim).add(head.project(table.X[e]), table.y[e].tolist())
        ucls = head.user_classes(st)
        ucols = [i for i, c in enumerate(ucls) if c in classes]
        P = head.predict_proba_user(st, Xt)[:, ucols]
        res[f"fused-K{k}"] = float(ua(yt, np.asarray(ucls)[ucols][P.argmax(1)]))
        out[spk] = res
    return out


def _recipe_scores(table, train: np.ndarray, splits: dict, name: str, k: int) -> dict[str, dict]:
    """An embedding-table recipe (``scenarios.fewshot.recipes``) on the same splits, K=k."""
    from .recipes import make_recipe

    recipe = make_recipe(name).fit_reference(table.X[train], table.y[train], table.speakers[train])
    known = set(table.y[train].tolist())
    out = {}
    for spk, (enroll, test, _) in splits.items():
        e = _first_k(enroll, table.y, k)
        e = e[np.isin(table.y[e], list(known))]     # the recipe's head has no class for an unseen emotion
        pred = recipe.personalize(table.X[e], table.y[e], table.X[test], restrict=True)
        out[spk] = {f"{name}-K{k}": float(ua(table.y[test], pred.astype(str)))}
    return out


def loco_scores(table, held_out: str, config: UnseenConfig | None = None, *, speakers: Sequence[str] | None = None,
                verbose: bool = False) -> list[SpeakerScores]:
    """Every condition (``CONDITIONS``) for every speaker of ``held_out``, the head trained on the
    other corpora of ``table``; ``speakers`` limits the speakers evaluated (default: all)."""
    config = config or UnseenConfig()
    corpora = np.asarray(table.corpora).astype(str)
    in_c = corpora == held_out
    if not in_c.any():
        raise KeyError(f"corpus {held_out!r} is not in the table; it holds {sorted(set(corpora.tolist()))}")
    train = np.flatnonzero(~in_c)
    head = fit_head(table, train, config)
    classes = sorted(set(table.y[in_c].tolist()))
    cfg = PersonalizerConfig(min_new_emotion_clips=1)
    p = Personalizer(None, head, ":memory:", config=cfg)
    rng = np.random.default_rng(config.seed)
    all_spk = sorted(set(table.speakers[in_c].tolist()))
    targets = all_spk if speakers is None else list(speakers)
    kmax = max(config.shots)
    splits = {spk: (e, t, pool) for spk, e, t, pool in
              speaker_splits(table, np.flatnonzero(in_c), kmax, config.seed, speakers=targets)}
    fused = _fused_scores(table, train, splits, classes, kmax) if config.fused_reference else {}
    for name in config.recipes:
        for spk, res in _recipe_scores(table, train, splits, name, kmax).items():
            fused.setdefault(spk, {}).update(res)
    out = []
    for n, (spk, (enroll, test, pool)) in enumerate(splits.items()):
        Xt, yt = table.X[test], table.y[test]
        res: dict[str, float] = {}
        res["unenrolled"] = _score(p, f"{spk}-none", Xt, yt, classes)
        for u in config.unlabelled:
            user = f"{spk}-u{u}"
            obs = rng.permutation(pool)[:u]
            p.observe_embeddings(user, table.X[obs])
            res[f"U{u}"] = _score(p, user, Xt, yt, classes)
        for k in config.shots:
            user, e = f"{spk}-k{k}", _first_k(enroll, table.y, k)
            _enroll(p, user, table.X[e], table.y[e])
            res[f"K{k}"] = _score(p, user, Xt, yt, classes)
        res.update(fused.get(spk, {}))
        if config.tenant_speakers <= 0:
            out.append(SpeakerScores(held_out, spk, res))
            continue
        # the tenant: other speakers of the held-out corpus, tenant_shots clips per emotion each
        others = [s for s in all_spk if s != spk]
        others = [others[i] for i in rng.permutation(len(others))[:config.tenant_speakers]]
        t_rows = []
        for o in others:
            rows = rng.permutation(np.flatnonzero(in_c & (table.speakers == o)))
            t_rows += _first_k(rows, table.y, config.tenant_shots).tolist()
        pt = p.for_tenant(f"t{n}")
        if t_rows:
            t_rows = np.asarray(t_rows)
            pt.enroll_tenant_embeddings(table.X[t_rows], table.y[t_rows].tolist(), speakers=table.speakers[t_rows],
                                        new_emotions=[c for c in classes if c not in head.classes])
        res["T+unenrolled"] = _score(pt, f"{spk}-none", Xt, yt, classes)
        for k in config.shots:
            user, e = f"{spk}-tk{k}", _first_k(enroll, table.y, k)
            _enroll(pt, user, table.X[e], table.y[e])
            res[f"T+K{k}"] = _score(pt, user, Xt, yt, classes)
        out.append(SpeakerScores(held_out, spk, res))
        if verbose:
            print(f"  {held_out} {spk}: " + " ".join(f"{c}={v:.3f}" for c, v in res.items()), flush=True)
    return out


def within_corpus_ceiling(table, corpus: str, config: UnseenConfig | None = None) -> list[SpeakerScores]:
    """The within-corpus speaker-independent reference: a head trained on the corpus's other
    speakers (``ceiling_folds`` speaker folds), each test speaker standardized with their
    non-test clips (observed without labels), scored on the same test clips as ``loco_scores``."""
    config = config or UnseenConfig()
    corpora = np.asarray(table.corpora).astype(str)
    in_c = np.flatnonzero(corpora == corpus)
    classes = sorted(set(table.y[in_c].tolist()))
    kmax = max(config.shots)
    out = []
    for _, test_idx in speaker_kfold(table.speakers[in_c], n_splits=config.ceiling_folds, seed=config.seed):
        held = set(table.speakers[in_c][test_idx].tolist())
        train = in_c[~np.isin(table.speakers[in_c], list(held))]
        p = Personalizer(None, fit_head(table, train, config), ":memory:")
        for spk, _, test, pool in speaker_splits(table, in_c, kmax, config.seed, speakers=sorted(held)):
            p.observe_embeddings(spk, table.X[pool])
            out.append(SpeakerScores(corpus, spk, {"ceiling": _score(p, spk, table.X[test], table.y[test], classes)}))
    return out


def _mean_ci(values: Sequence[float], *, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95 % percentile bootstrap interval over speakers."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return float(v.mean()), float(lo), float(hi)


def summarize(rows: Sequence[SpeakerScores]) -> dict[str, dict[str, tuple[float, float, float, int]]]:
    """``{corpus: {condition: (mean UA, CI low, CI high, speakers)}}`` over speakers."""
    out: dict[str, dict] = {}
    for corpus in dict.fromkeys(r.corpus for r in rows):
        mine = [r for r in rows if r.corpus == corpus]
        conds = list(dict.fromkeys(c for r in mine for c in r.scores))
        out[corpus] = {}
        for c in conds:
            vals = [r.scores[c] for r in mine if c in r.scores]
            out[corpus][c] = (*_mean_ci(vals), len(vals))
    return out


def _objective(summary: dict, config: UnseenConfig) -> float:
    """What the inner loop maximizes: mean over corpora of unenrolled, U10 and K5-ish UA."""
    keys = ["unenrolled", f"U{sorted(config.unlabelled)[len(config.unlabelled) // 2]}", f"K{max(config.shots)}"]
    return float(np.mean([summary[c][k][0] for c in summary for k in keys if k in summary[c]]))


def select_on_training_corpora(table, held_out: str, grid: Sequence[dict], base: UnseenConfig | None = None, *,
                               max_speakers: int = 8, verbose: bool = False) -> tuple[UnseenConfig, list]:
    """Choose ``UnseenConfig`` settings for the fold that holds out ``held_out`` *without* looking
    at it: each candidate (a dict of ``UnseenConfig`` / ``Shrinkage`` fields) is scored by leave-one-
    *training*-corpus-out over the other corpora (up to ``max_speakers`` speakers each, no tenant,
    no reference); the best mean of unenrolled, the middle U and the largest K wins.
    Returns ``(config, [(candidate, objective), ...])``."""
    base = base or UnseenConfig()
    corpora = np.asarray(table.corpora).astype(str)
    inner = table.subset(corpora != held_out)
    inner_corpora = sorted(set(np.asarray(inner.corpora).astype(str).tolist()))
    scored = []
    for cand in grid:
        sh_fields = {k: v for k, v in cand.items() if k in Shrinkage.__dataclass_fields__}
        cfg_fields = {k: v for k, v in cand.items() if k not in sh_fields}
        cfg = replace(base, shrinkage=replace(base.shrinkage, **sh_fields), fused_reference=False, recipes=(),
                      tenant_speakers=0, **cfg_fields)
        rows = []
        for c in inner_corpora:
            spk = sorted(set(inner.speakers[np.asarray(inner.corpora) == c].tolist()))
            pick = np.random.default_rng(base.seed).permutation(len(spk))[:max_speakers]
            rows += loco_scores(inner, c, cfg, speakers=[spk[i] for i in sorted(pick)])
        obj = _objective(summarize(rows), cfg)
        scored.append((cand, obj))
        if verbose:
            print(f"    inner {held_out}: {cand} -> {obj:.3f}", flush=True)
    best = max(scored, key=lambda t: t[1])[0]
    sh_fields = {k: v for k, v in best.items() if k in Shrinkage.__dataclass_fields__}
    cfg_fields = {k: v for k, v in best.items() if k not in sh_fields}
    return replace(base, shrinkage=replace(base.shrinkage, **sh_fields), **cfg_fields), scored
