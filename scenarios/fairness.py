"""Fairness report: who the model serves worst, before and after personalization (issue 15).

For held-out speakers (every speaker of a corpus the head never saw: ``protocol="loco"``), UA is
computed per group — gender (where the corpus records it), language, corpus — with a bootstrap
interval that resamples the group's *speakers* (``adapt.metrics.bootstrap_ci``), per speaker (an
interval over their clips), and summarized as the worst group, the gap best − worst, and the
per-speaker UA distribution: mean, the mean of the worst 10 % of speakers (at least one) and the
**worst-10 % gap** (mean − worst 10 %). Each number is given for every condition: ``unenrolled``
(a user never seen) and ``K<k>`` (after ``k`` labelled clips per emotion; ``method`` picks the
personalization: the ``GlobalHead``'s per-user class means, or an embedding-table recipe of
``scenarios.fewshot.recipes``). Personalization is fairer where it narrows the worst-10 % gap.

Example:
    >>> from scenarios.tables import FeatureTable                           # doctest: +SKIP
    >>> rep = fairness_report(FeatureTable.from_corpora(SHARED_CORPORA), "emovo")  # doctest: +SKIP
    >>> rep.conditions["K5"].speakers.gap_worst                              # doctest: +SKIP
    0.12
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from adapt.metrics import bootstrap_ci, unweighted_average_recall

__all__ = ["GroupScore", "Grouping", "SpeakerSpread", "Condition", "FairnessReport", "group_scores", "speaker_spread",
           "condition_from_predictions", "fairness_report", "heldout_labels", "to_markdown", "plot_report", "ATTRIBUTES",
           "WORST_FRACTION"]

ATTRIBUTES = ("gender", "language", "corpus")
WORST_FRACTION = 0.1


@dataclass(frozen=True)
class GroupScore:
    """UA of one group with its bootstrap interval, speakers and clips."""

    group: str
    ua: float
    lo: float
    hi: float
    speakers: int
    clips: int


@dataclass(frozen=True)
class Grouping:
    """Groups of one attribute, the worst one and the gap best − worst (NaN with one group)."""

    attribute: str
    groups: tuple[GroupScore, ...]

    @property
    def worst(self) -> GroupScore:
        return min(self.groups, key=lambda g: g.ua)

    @property
    def best(self) -> GroupScore:
        return max(self.groups, key=lambda g: g.ua)

    @property
    def gap(self) -> float:
        return float(self.best.ua - self.worst.ua) if len(self.groups) > 1 else float("nan")


@dataclass(frozen=True)
class SpeakerSpread:
    """The per-speaker UA distribution: ``scores`` (speaker -> UA), mean, median, the mean of the
    worst ``fraction`` of speakers (``worst``; at least one speaker) and ``gap_worst`` = mean − worst."""

    scores: dict
    fraction: float = WORST_FRACTION

    @property
    def values(self) -> np.ndarray:
        return np.sort(np.array(list(self.scores.values()), dtype=float))

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def median(self) -> float:
        return float(np.median(self.values))

    @property
    def n_worst(self) -> int:
        return max(1, int(np.ceil(self.fraction * len(self.values))))

    @property
    def worst(self) -> float:
        return float(self.values[: self.n_worst].mean())

    @property
    def gap_worst(self) -> float:
        return self.mean - self.worst


@dataclass(frozen=True)
class Condition:
    """Everything measured for one condition (``unenrolled``, ``K5``, ...)."""

    name: str
    ua: GroupScore
    groupings: tuple[Grouping, ...]
    speakers: SpeakerSpread


@dataclass(frozen=True)
class FairnessReport:
    corpus: str
    protocol: str
    method: str
    shots: int
    conditions: dict
    seed: int = 0
    n_boot: int = 1000


def group_scores(y, pred, groups, speakers, *, n_boot: int = 1000, seed: int = 0) -> tuple[GroupScore, ...]:
    """UA per group (empty group names skipped), each with a bootstrap interval over its speakers."""
    y, pred, groups, speakers = (np.asarray(a).astype(str) for a in (y, pred, groups, speakers))
    out = []
    for g in sorted(set(groups.tolist()) - {""}):
        m = groups == g
        ua, lo, hi = bootstrap_ci(y[m], pred[m], speakers[m], n_boot=n_boot, seed=seed)
        out.append(GroupScore(g, ua, lo, hi, len(set(speakers[m].tolist())), int(m.sum())))
    return tuple(out)


def speaker_spread(y, pred, speakers, *, fraction: float = WORST_FRACTION) -> SpeakerSpread:
    """Per-speaker UA (over each speaker's own clips) and its spread."""
    y, pred, speakers = (np.asarray(a).astype(str) for a in (y, pred, speakers))
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    scores = {s: unweighted_average_recall(y[speakers == s], pred[speakers == s]) for s in dict.fromkeys(speakers.tolist())}
    return SpeakerSpread(scores, fraction)


def condition_from_predictions(name: str, y, pred, *, speakers, attributes: dict, n_boot: int = 1000,
                               seed: int = 0) -> Condition:
    """One ``Condition`` from per-clip labels and predictions; ``attributes``: name -> per-clip group."""
    y, pred, speakers = (np.asarray(a).astype(str) for a in (y, pred, speakers))
    ua, lo, hi = bootstrap_ci(y, pred, speakers, n_boot=n_boot, seed=seed)
    overall = GroupScore("all", ua, lo, hi, len(set(speakers.tolist())), len(y))
    groupings = []
    for attr, values in attributes.items():
        gs = group_scores(y, pred, values, speakers, n_boot=n_boot, seed=seed)
        if gs:
            groupings.append(Grouping(attr, gs))
    return Condition(name, overall, tuple(groupings), speaker_spread(y, pred, speakers))


def heldout_labels(held) -> np.ndarray:
    """The top class of each row of ``scenarios.calibration.HeldOut`` predictions."""
    return np.asarray(held.classes, dtype=object)[held.logits.argmax(axis=1)]


def _recipe_predictions(table, train: np.ndarray, test_rows: np.ndarray, name: str, shots: int, seed: int):
    """``(y, pred, speakers, rows)`` of an embedding-table recipe on the splits ``heldout_predictions`` uses."""

    from .fewshot.recipes import make_recipe
    from .fewshot.unseen import _first_k, speaker_splits

    recipe = make_recipe(name).fit_reference(table.X[train], table.y[train], table.speakers[train])
    known = set(table.y[train].tolist())
    ys, ps, ss, rs = [], [], [], []
    for _, enroll, test, _ in speaker_splits(table, test_rows, shots, seed):
        e = _first_k(enroll, table.y, shots)
        e = e[np.isin(table.y[e], list(known))]
        if len(test) == 0 or len(e) == 0:
            continue
        ps.append(recipe.personalize(table.X[e], table.y[e], table.X[test], restrict=True).astype(str))
        ys.append(table.y[test]), ss.append(table.speakers[test]), rs.append(test)
    return np.concatenate(ys), np.concatenate(ps), np.concatenate(ss), np.concatenate(rs)


def fairness_report(table, corpus: str, *, method: str = "global-head", protocol: str = "loco", shots: int = 5,
                    n_boot: int = 1000, seed: int = 0) -> FairnessReport:
    """The report for every speaker of ``corpus`` as a new user.

    ``protocol="loco"``: the head is trained on the table's other corpora only. ``method``:
    ``"global-head"`` (the Personalizer's model) or a recipe name of ``scenarios.fewshot.recipes``
    for the enrolled condition (the unenrolled one is always the global head's).
    """
    from .calibration import CalibrationConfig, fit_head_rows, heldout_predictions

    if protocol != "loco":
        raise KeyError(f"unknown protocol {protocol!r}; known: ['loco']")
    corpora = np.asarray(table.corpora).astype(str)
    if corpus not in set(corpora.tolist()):
        raise KeyError(f"corpus {corpus!r} is not in the table; it holds {sorted(set(corpora.tolist()))}")
    if len(set(corpora.tolist())) < 2:
        raise ValueError("leave one corpus out needs at least one other corpus to train on")
    train, test_rows = np.flatnonzero(corpora != corpus), np.flatnonzero(corpora == corpus)
    head = fit_head_rows(table, train, CalibrationConfig())
    paths = ("unenrolled", "enrolled") if method == "global-head" else ("unenrolled",)
    held = heldout_predictions(head, table, test_rows, shots=shots, seed=seed, paths=paths)
    pred = heldout_labels(held)
    conds = {}
    for p, name in (("unenrolled", "unenrolled"), ("enrolled", f"K{shots}")):
        m = held.path == p
        if m.any():
            conds[name] = condition_from_predictions(
                name, held.y[m], pred[m], speakers=held.speaker[m],
                attributes={"gender": held.gender[m], "language": held.language[m], "corpus": held.corpus[m]},
                n_boot=n_boot, seed=seed)
    if method != "global-head":
        y, pr, spk, rows = _recipe_predictions(table, train, test_rows, method, shots, seed)
        attrs = {"gender": np.asarray(table.genders)[rows].astype(str) if table.genders is not None else np.full(len(rows), ""),
                 "language": np.asarray(table.languages)[rows], "corpus": corpora[rows]}
        name = f"{method}-K{shots}"
        conds[name] = condition_from_predictions(name, y, pr, speakers=spk, attributes=attrs, n_boot=n_boot, seed=seed)
    return FairnessReport(corpus, protocol, method, shots, conds, seed, n_boot)


def _f(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.3f}"


def to_markdown(rep: FairnessReport, *, heading: str = "##") -> str:
    """The report as Markdown: a summary per condition, then each grouping's groups."""
    names = list(rep.conditions)
    lines = [f"{heading} Fairness: {rep.corpus} ({rep.protocol}, {rep.method}, K={rep.shots})", "",
             f"Every speaker of {rep.corpus} is a new user of a head that never saw the corpus "
             f"(leave one corpus out). UA with 95 % bootstrap intervals over speakers ({rep.n_boot} resamples, "
             f"seed {rep.seed}); worst 10 %: the mean UA of the worst-served tenth of speakers (at least one).", "",
             "| condition | UA [95 % CI] | speakers | speaker UA mean | median | worst 10 % | gap mean − worst 10 % |"
             + "".join(f" worst {a} (gap) |" for a in ATTRIBUTES),
             "|---|---|---|---|---|---|---|" + "---|" * len(ATTRIBUTES)]
    for n in names:
        c = rep.conditions[n]
        s = c.speakers
        gmap = {g.attribute: g for g in c.groupings}
        cells = [f"{gmap[a].worst.group} {_f(gmap[a].worst.ua)} ({_f(gmap[a].gap)})" if a in gmap else "–"
                 for a in ATTRIBUTES]
        lines.append(f"| {n} | {_f(c.ua.ua)} [{_f(c.ua.lo)}, {_f(c.ua.hi)}] | {c.ua.speakers} | {_f(s.mean)} | "
                     f"{_f(s.median)} | {_f(s.worst)} (n={s.n_worst}) | {_f(s.gap_worst)} | " + " | ".join(cells) + " |")
    if len(names) >= 2:
        a, b = rep.conditions[names[0]].speakers, rep.conditions[names[-1]].speakers
        verdict = "narrows" if b.gap_worst < a.gap_worst else "does **not** narrow"
        lines += ["", f"Personalization ({names[-1]}) {verdict} the worst-10 % gap: {_f(a.gap_worst)} → "
                      f"{_f(b.gap_worst)} (worst 10 % {_f(a.worst)} → {_f(b.worst)})."]
    for attr in ATTRIBUTES:
        rows = [(n, g) for n in names for gr in rep.conditions[n].groupings if gr.attribute == attr for g in gr.groups]
        if not rows:
            continue
        lines += ["", f"UA by {attr}:", "", "| condition | group | UA [95 % CI] | speakers | clips |", "|---|---|---|---|---|"]
        lines += [f"| {n} | {g.group} | {_f(g.ua)} [{_f(g.lo)}, {_f(g.hi)}] | {g.speakers} | {g.clips} |" for n, g in rows]
    return "\n".join(lines) + "\n"


def plot_report(rep: FairnessReport, path: str | Path) -> Path:
    """A PNG: per-speaker UA sorted (each condition) and UA per gender / language with intervals."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(rep.conditions)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for n in names:
        v = rep.conditions[n].speakers.values
        axes[0].plot(np.arange(1, len(v) + 1) / len(v), v, marker=".", label=n)
    axes[0].axvline(WORST_FRACTION, color="grey", ls=":", lw=1)
    axes[0].set(xlabel="speakers, worst first (fraction)", ylabel="speaker UA", ylim=(0, 1.02),
                title=f"{rep.corpus}: per-speaker UA")
    axes[0].legend()
    bars, labels = [], []
    for n in names:
        for gr in rep.conditions[n].groupings:
            if gr.attribute in ("gender", "language") and len(gr.groups) > 1:
                for g in gr.groups:
                    bars.append((n, g)), labels.append(f"{n}\n{gr.attribute}={g.group}")
    if not bars:
        bars = [(n, rep.conditions[n].ua) for n in names]
        labels = [f"{n}\nall" for n in names]
    x = np.arange(len(bars))
    ua = np.array([g.ua for _, g in bars])
    err = np.array([[g.ua - g.lo for _, g in bars], [g.hi - g.ua for _, g in bars]])
    colors = [f"C{names.index(n)}" for n, _ in bars]
    axes[1].bar(x, ua, yerr=err, color=colors, capsize=3)
    axes[1].set_xticks(x, labels, fontsize=7)
    axes[1].set(ylabel="UA (95 % CI over speakers)", ylim=(0, 1), title="UA per group")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
