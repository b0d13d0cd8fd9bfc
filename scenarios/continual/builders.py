"""Continual scenarios over embedding tables, as Avalanche benchmarks.

Each builder takes a feature table (``scenarios.tables.FeatureTable`` or any object with ``X
[N, D]``, ``y [N]`` (emotion names), ``speakers [N]``, ``corpora [N]``, ``languages [N]``) and
returns a ``ContinualScenario``: an Avalanche benchmark (``avalanche.benchmarks.tensors_benchmark``,
one task label) plus the bookkeeping needed to check and report it. **Every experience has its
own test set of speakers that no experience trains on** (speaker-disjoint by construction).

- ``speaker_incremental``: experiences are groups of speakers (domain-incremental, one label set);
  inside each group a fraction of the speakers is held out as that experience's test set.
- ``language_incremental``: one experience per corpus (RAVDESS en -> EmoDB de -> EMOVO it -> URDU ur
  by default, order configurable) on the emotions all of them share; held-out speakers per corpus.
- ``class_incremental``: emotions arrive in steps; speakers are split once into train and test.
- ``fewshot_incremental``: any of the above with only ``shots`` training clips per class per
  experience (test sets untouched).

Options shared by all builders (keyword-only): ``test_fraction`` (share of speakers held out per
experience, at least one), ``normalize`` (``"speaker"``: per-speaker standardization of the
embeddings with ``adapt.normalization.standardize_by_speaker``, unlabelled, each speaker with their
own clips; ``"corpus"``: the same per corpus, for corpora whose speakers each act one emotion, like
URDU, where per-speaker statistics would remove the emotion; ``"none"``), ``shots`` (subsample each training experience), ``seed``.

For fine-tuning the encoder on audio, ``scenarios.continual.audio.audio_scenario(scenario, table)``
turns any of these scenarios into an Avalanche benchmark over the same clips (same experiences and
held-out speakers); ``scenarios.tables.FeatureTable.from_clips`` is a table of clips without
embeddings.

Example:
    >>> from scenarios.tables import FeatureTable                        # doctest: +SKIP
    >>> fs = FeatureTable.from_corpora(("ravdess", "emodb", "emovo", "urdu"))  # doctest: +SKIP
    >>> sc = language_incremental(fs, order=("ravdess", "emodb", "emovo", "urdu"))  # doctest: +SKIP
    >>> sc.experience_names, sc.classes                                  # doctest: +SKIP
    (('ravdess', 'emodb', 'emovo', 'urdu'), ('angry', 'happy', 'neutral', 'sad'))
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch

from adapt.errors import TooFewClipsError, UnknownEmotionError

__all__ = [
    "ContinualScenario", "speaker_incremental", "language_incremental", "class_incremental",
    "fewshot_incremental", "SCENARIOS", "ScenarioBuilder", "builder_of", "make_scenario", "NORMALIZATIONS",
    "UnknownEmotionError",
]

NORMALIZATIONS = ("speaker", "corpus", "none")


@dataclass(frozen=True)
class ContinualScenario:
    """An Avalanche benchmark plus what each experience holds.

    Attributes:
        name: builder name (``"language-incremental"``, ...).
        benchmark: the Avalanche benchmark (``train_stream`` / ``test_stream``, ``T`` experiences).
        classes: class index -> emotion name, the label space of every experience.
        experience_names: ``T`` readable names (corpus, speaker group, class step).
        train_indices / test_indices: ``T`` int arrays of row indices into the source table.
        train_speakers / test_speakers: ``T`` sorted speaker tuples.
        train_data / test_data: ``T`` pairs ``(x float32 [n, D], y int64 [n])`` (normalized).
        options: the builder options (JSON-serializable).
        fingerprint: hash of options, rows and features; the runner's resume key.
        builder: the ``SCENARIOS`` key that built it (``"fewshot-incremental"`` for a few-shot
            scenario, whose ``name`` is ``"fewshot-<base>"``).
    """

    name: str
    benchmark: Any = field(repr=False)
    classes: tuple[str, ...]
    experience_names: tuple[str, ...]
    train_indices: tuple[np.ndarray, ...] = field(repr=False)
    test_indices: tuple[np.ndarray, ...] = field(repr=False)
    train_speakers: tuple[tuple[str, ...], ...] = field(repr=False)
    test_speakers: tuple[tuple[str, ...], ...] = field(repr=False)
    train_data: tuple[tuple[torch.Tensor, torch.Tensor], ...] = field(repr=False)
    test_data: tuple[tuple[torch.Tensor, torch.Tensor], ...] = field(repr=False)
    options: dict = field(repr=False)
    fingerprint: str = ""
    builder: str = ""

    @property
    def n_experiences(self) -> int:
        return len(self.experience_names)

    @property
    def input_size(self) -> int:
        return int(self.train_data[0][0].shape[1])

    def summary(self) -> list[dict]:
        """One row per experience: name, clips and speakers in train/test, classes present."""
        rows = []
        for i, name in enumerate(self.experience_names):
            ytr, yte = self.train_data[i][1], self.test_data[i][1]
            rows.append({
                "experience": name, "train_clips": len(ytr), "test_clips": len(yte),
                "train_speakers": len(self.train_speakers[i]), "test_speakers": len(self.test_speakers[i]),
                "classes": [self.classes[c] for c in sorted(set(ytr.tolist()) | set(yte.tolist()))],
            })
        return rows


# ----------------------------------------------------------------------------- helpers


def _columns(features) -> dict[str, np.ndarray]:
    missing = [a for a in ("X", "y", "speakers") if not hasattr(features, a)]
    if missing:
        raise TypeError(f"features must have X, y and speakers (a FeatureTable); {type(features).__name__} "
                        f"lacks {missing}")
    X = np.asarray(features.X, dtype=np.float32)
    n = len(X)
    if X.ndim != 2 or n == 0:
        raise ValueError(f"features.X must be a non-empty [N, D] array, got shape {X.shape}")
    cols = {"X": X}
    for name in ("y", "speakers", "corpora", "languages"):
        values = getattr(features, name, None)
        arr = np.asarray(values, dtype=object) if values is not None else np.full(n, "", dtype=object)
        if arr.shape != (n,):
            raise ValueError(f"features.{name} must have shape ({n},), got {arr.shape}")
        cols[name] = arr.astype(str)
    if not np.isfinite(X).all():
        raise ValueError("features.X contains NaN or infinite values")
    return cols


def _check_common(test_fraction: float, normalize: str, shots: int | None) -> None:
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if shots is not None and (not isinstance(shots, (int, np.integer)) or shots < 1):
        raise ValueError(f"shots must be a positive int or None, got {shots!r}")


def _hold_out(speakers: Sequence[str], test_fraction: float, rng: np.random.Generator, where: str,
              labels: Sequence[str] | None = None):
    """Split a group of speakers into (train, test), each non-empty.

    With ``labels`` (one per clip, aligned with ``speakers``), up to 50 random splits are tried
    and the first whose train and test sides both hold every class of the group is kept (else
    the one covering most), so every test set can score every class (UA needs them present).
    """
    spk_rows = np.asarray(speakers, dtype=object)
    spk = sorted(set(spk_rows.tolist()))
    if len(spk) < 2:
        raise TooFewClipsError(f"{where} has {len(spk)} speaker(s); need >= 2 to hold one out for testing")
    n_test = min(len(spk) - 1, max(1, int(round(test_fraction * len(spk)))))
    if labels is None:
        perm = rng.permutation(len(spk))
        return tuple(sorted(spk[i] for i in perm[n_test:])), tuple(sorted(spk[i] for i in perm[:n_test]))
    lab = np.asarray(labels, dtype=object)
    classes_of = {s: set(lab[spk_rows == s].tolist()) for s in spk}
    wanted = set(lab.tolist())
    best, best_cover = None, -1
    for _ in range(50):
        perm = rng.permutation(len(spk))
        test, train = [spk[i] for i in perm[:n_test]], [spk[i] for i in perm[n_test:]]
        cover = len(set().union(*(classes_of[s] for s in test))) + len(set().union(*(classes_of[s] for s in train)))
        if cover > best_cover:
            best, best_cover = (tuple(sorted(train)), tuple(sorted(test))), cover
        if cover == 2 * len(wanted):
            break
    return best


def _subsample_shots(idx: np.ndarray, labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    keep = []
    for c in np.unique(labels[idx]):
        rows = idx[labels[idx] == c]
        keep.append(rng.choice(rows, size=min(shots, len(rows)), replace=False))
    return np.sort(np.concatenate(keep))


def _build(name: str, cols: dict, experiences: list[tuple[str, np.ndarray, np.ndarray]], classes: Sequence[str],
           *, normalize: str, shots: int | None, rng: np.random.Generator, options: dict) -> ContinualScenario:
    """Turn ``(name, train_rows, test_rows)`` per experience into a ContinualScenario."""
    from avalanche.benchmarks import tensors_benchmark

    X = cols["X"]
    if normalize in ("speaker", "corpus"):
        from adapt.normalization import standardize_by_speaker

        # "corpus" treats each corpus as one speaker: same unlabelled statistics, one level up
        groups = cols["speakers"] if normalize == "speaker" else cols["corpora"]
        X = standardize_by_speaker(X, groups).astype(np.float32)
    class_index = {c: i for i, c in enumerate(classes)}
    names, tr_idx, te_idx, tr_data, te_data = [], [], [], [], []
    for exp_name, train_rows, test_rows in experiences:
        if shots is not None:
            train_rows = _subsample_shots(train_rows, cols["y"], shots, rng)
        for kind, rows in (("train", train_rows), ("test", test_rows)):
            if len(rows) == 0:
                raise TooFewClipsError(f"experience {exp_name!r} has no {kind} clips of classes {list(classes)}")
        names.append(exp_name)
        tr_idx.append(np.asarray(train_rows, dtype=np.int64))
        te_idx.append(np.asarray(test_rows, dtype=np.int64))
        for rows, out in ((train_rows, tr_data), (test_rows, te_data)):
            y = np.array([class_index[v] for v in cols["y"][rows]], dtype=np.int64)
            out.append((torch.from_numpy(np.ascontiguousarray(X[rows])), torch.from_numpy(y)))
    benchmark = tensors_benchmark(train_tensors=tr_data, test_tensors=te_data, task_labels=[0] * len(names))
    h = hashlib.sha256(json.dumps({"name": name, "classes": list(classes), **options}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(cols["X"]).tobytes())
    for a in tr_idx + te_idx:
        h.update(a.tobytes())
    spk = cols["speakers"]
    return ContinualScenario(
        name=name, benchmark=benchmark, classes=tuple(classes), experience_names=tuple(names),
        train_indices=tuple(tr_idx), test_indices=tuple(te_idx),
        train_speakers=tuple(tuple(sorted(set(spk[i]))) for i in tr_idx),
        test_speakers=tuple(tuple(sorted(set(spk[i]))) for i in te_idx),
        train_data=tuple(tr_data), test_data=tuple(te_data), options=options, fingerprint=h.hexdigest()[:16],
        builder=name)


def _select_classes(cols, classes, default: Callable[[], list[str]]) -> list[str]:
    present = set(cols["y"].tolist())
    if classes is None:
        chosen = default()
    else:
        chosen = [str(c) for c in classes]
        unknown = sorted(set(chosen) - present)
        if unknown:
            raise UnknownEmotionError(f"emotions {unknown} are not in the features; present: {sorted(present)}")
    if len(chosen) < 2:
        raise TooFewClipsError(f"a scenario needs >= 2 classes, got {chosen}")
    return sorted(chosen)


def _shared_classes(cols) -> list[str]:
    """Emotions present in every corpus of the table (the shared label set)."""
    sets = [set(cols["y"][cols["corpora"] == c].tolist()) for c in np.unique(cols["corpora"])]
    return sorted(set.intersection(*sets))


# ----------------------------------------------------------------------------- builders


def speaker_incremental(features, *, n_experiences: int = 4, classes: Sequence[str] | None = None,
                        order: str = "random", test_fraction: float = 0.25, normalize: str = "speaker",
                        shots: int | None = None, seed: int = 0) -> ContinualScenario:
    """Experiences = groups of speakers (domain-incremental); each group holds out test speakers.

    ``classes`` default: the emotions every corpus in the table has. ``order="random"`` mixes
    corpora in every group; ``order="corpus"`` keeps each corpus's speakers together (shuffled
    inside the corpus), so later groups also bring a new language.
    """
    _check_common(test_fraction, normalize, shots)
    if order not in ("random", "corpus"):
        raise ValueError(f"order must be 'random' or 'corpus', got {order!r}")
    cols = _columns(features)
    chosen = _select_classes(cols, classes, lambda: _shared_classes(cols))
    rows = np.flatnonzero(np.isin(cols["y"], chosen))
    rng = np.random.default_rng(seed)
    spk_all = sorted(set(cols["speakers"][rows].tolist()))
    if not isinstance(n_experiences, (int, np.integer)) or not 1 <= n_experiences <= len(spk_all) // 2:
        raise ValueError(f"n_experiences must be in [1, {len(spk_all) // 2}] for {len(spk_all)} speakers, "
                         f"got {n_experiences!r}")
    if order == "random":
        ordered = [spk_all[i] for i in rng.permutation(len(spk_all))]
    else:
        corpus_of = {s: c for s, c in zip(cols["speakers"][rows], cols["corpora"][rows])}
        ordered = []
        for corpus in sorted(set(corpus_of.values())):
            group = [s for s in spk_all if corpus_of[s] == corpus]
            ordered += [group[i] for i in rng.permutation(len(group))]
    experiences = []
    for k, group in enumerate(np.array_split(np.array(ordered, dtype=object), n_experiences)):
        spk = cols["speakers"][rows]
        in_group = np.isin(spk, group.tolist())
        train_spk, test_spk = _hold_out(spk[in_group], test_fraction, rng, f"speaker group {k}",
                                        labels=cols["y"][rows][in_group])
        experiences.append((f"speakers-{k}", rows[np.isin(spk, train_spk)], rows[np.isin(spk, test_spk)]))
    options = {"n_experiences": int(n_experiences), "order": order, "test_fraction": test_fraction,
               "normalize": normalize, "shots": shots, "seed": seed}
    return _build("speaker-incremental", cols, experiences, chosen, normalize=normalize, shots=shots, rng=rng,
                  options=options)


def language_incremental(features, *, order: Sequence[str] | None = None, by: str = "corpus",
                         classes: Sequence[str] | None = None, test_fraction: float = 0.25,
                         normalize: str = "speaker", shots: int | None = None, seed: int = 0) -> ContinualScenario:
    """One experience per corpus (``by="corpus"``) or language (``by="language"``), in ``order``.

    ``order`` default: ``ravdess, emodb, emovo, urdu`` where present, then the others sorted.
    ``classes`` default: the emotions all experiences share (RAVDESS/EmoDB/EMOVO/URDU: angry,
    happy, neutral, sad).
    """
    _check_common(test_fraction, normalize, shots)
    if by not in ("corpus", "language"):
        raise ValueError(f"by must be 'corpus' or 'language', got {by!r}")
    cols = _columns(features)
    key = cols["corpora"] if by == "corpus" else cols["languages"]
    present = sorted(set(key.tolist()))
    if order is None:
        preferred = ["ravdess", "emodb", "emovo", "urdu"] if by == "corpus" else ["en", "de", "it", "ur"]
        order = [p for p in preferred if p in present] + [p for p in present if p not in preferred]
    order = [str(o) for o in order]
    unknown = sorted(set(order) - set(present))
    if unknown or len(set(order)) != len(order) or len(order) < 1:
        raise ValueError(f"order must name distinct {by} values among {present}, got {order}")

    def shared() -> list[str]:
        return sorted(set.intersection(*[set(cols["y"][key == o].tolist()) for o in order]))

    chosen = _select_classes(cols, classes, shared)
    rng = np.random.default_rng(seed)
    experiences = []
    for o in order:
        rows = np.flatnonzero((key == o) & np.isin(cols["y"], chosen))
        spk = cols["speakers"][rows]
        train_spk, test_spk = _hold_out(spk, test_fraction, rng, f"{by} {o!r}", labels=cols["y"][rows])
        experiences.append((o, rows[np.isin(spk, train_spk)], rows[np.isin(spk, test_spk)]))
    options = {"order": order, "by": by, "test_fraction": test_fraction, "normalize": normalize,
               "shots": shots, "seed": seed}
    return _build("language-incremental", cols, experiences, chosen, normalize=normalize, shots=shots, rng=rng,
                  options=options)


def class_incremental(features, *, n_experiences: int = 3, steps: Sequence[Sequence[str]] | None = None,
                      classes: Sequence[str] | None = None, test_fraction: float = 0.25,
                      normalize: str = "speaker", shots: int | None = None, seed: int = 0) -> ContinualScenario:
    """Emotions arrive in steps; one speaker split (per corpus) for all experiences.

    ``steps`` (e.g. ``[["neutral", "sad"], ["happy", "angry"]]``) fixes the classes of each
    experience; otherwise the ``classes`` (default: every emotion in the table) are shuffled with
    ``seed`` and cut into ``n_experiences`` near-equal steps. Test speakers are held out inside
    each corpus, so every corpus contributes to training and test.
    """
    _check_common(test_fraction, normalize, shots)
    cols = _columns(features)
    if steps is not None:
        steps = [[str(c) for c in s] for s in steps]
        flat = [c for s in steps for c in s]
        if len(set(flat)) != len(flat) or any(len(s) == 0 for s in steps):
            raise ValueError(f"steps must be non-empty, disjoint class lists, got {steps}")
        chosen = _select_classes(cols, flat, list)
    else:
        chosen = _select_classes(cols, classes, lambda: sorted(set(cols["y"].tolist())))
        if not isinstance(n_experiences, (int, np.integer)) or not 1 <= n_experiences <= len(chosen):
            raise ValueError(f"n_experiences must be in [1, {len(chosen)}], got {n_experiences!r}")
    rng = np.random.default_rng(seed)
    if steps is None:
        perm = [chosen[i] for i in rng.permutation(len(chosen))]
        steps = [list(s) for s in np.array_split(np.array(perm, dtype=object), n_experiences)]
    train_spk, test_spk = set(), set()
    for corpus in sorted(set(cols["corpora"].tolist())):
        mask = (cols["corpora"] == corpus) & np.isin(cols["y"], chosen)
        if not mask.any():
            continue
        tr, te = _hold_out(cols["speakers"][mask], test_fraction, rng, f"corpus {corpus!r}", labels=cols["y"][mask])
        train_spk |= set(tr)
        test_spk |= set(te)
    experiences = []
    for step in steps:
        rows = np.flatnonzero(np.isin(cols["y"], step))
        spk = cols["speakers"][rows]
        experiences.append(("+".join(sorted(step)), rows[np.isin(spk, list(train_spk))],
                            rows[np.isin(spk, list(test_spk))]))
    options = {"steps": [sorted(s) for s in steps], "test_fraction": test_fraction, "normalize": normalize,
               "shots": shots, "seed": seed}
    return _build("class-incremental", cols, experiences, chosen, normalize=normalize, shots=shots, rng=rng,
                  options=options)


def fewshot_incremental(features, *, shots: int = 5, base: str = "speaker-incremental", **opts) -> ContinualScenario:
    """``base`` scenario with only ``shots`` training clips per class in each experience."""
    if base not in SCENARIOS or base == "fewshot-incremental":
        raise KeyError(f"unknown base scenario {base!r}; known: {', '.join(n for n in SCENARIOS if n != 'fewshot-incremental')}")
    sc = SCENARIOS[base](features, shots=shots, **opts)
    return replace(sc, name=f"fewshot-{base}", builder="fewshot-incremental", options={**sc.options, "base": base})


# ----------------------------------------------------------------------------- validation rules
# How each builder rebuilds "the same scenario" from a scenario's training speakers only (for
# choosing options without test speakers, ``scenarios.continual.tuning``): the scenario's own
# options with another seed, so the builder holds out other speakers, plus what each kind must keep.


def _same_label_set(scenario: ContinualScenario, *, seed_offset: int) -> dict:
    """The scenario's options, a shifted seed and its label set (speaker- and language-incremental)."""
    opts = {k: v for k, v in scenario.options.items() if k != "base"}
    opts["seed"] = int(opts.get("seed", 0)) + seed_offset
    opts["classes"] = list(scenario.classes)
    if "n_experiences" in opts:  # fewer speakers: keep the number of experiences, it still fits
        opts["n_experiences"] = scenario.n_experiences
    return opts


def _same_class_steps(scenario: ContinualScenario, *, seed_offset: int) -> dict:
    """The scenario's options (its ``steps``: the same class steps, not a reshuffle) and a shifted seed."""
    opts = {k: v for k, v in scenario.options.items() if k not in ("base", "n_experiences", "classes")}
    opts["seed"] = int(opts.get("seed", 0)) + seed_offset
    return opts


def _base_rule(scenario: ContinualScenario, *, seed_offset: int) -> dict:
    """A few-shot scenario: its base builder's rule, the same ``shots`` and ``base``."""
    base = scenario.options["base"]
    return {**SCENARIOS[base].validation_rule(scenario, seed_offset=seed_offset), "base": base}


@dataclass(frozen=True)
class ScenarioBuilder:
    """A registered scenario builder: call it like the function, ask it how to validate.

    ``validation_options(scenario)`` are the keyword options that rebuild the same kind of scenario
    (same label set or class steps, same number of experiences, same normalization and shots) from
    a table restricted to ``scenario``'s training speakers, with the seed shifted by
    ``seed_offset`` so that other speakers are held out (``scenarios.continual.tuning``).
    """

    name: str
    build: Callable[..., ContinualScenario]
    validation_rule: Callable[..., dict]

    def __call__(self, features, **opts) -> ContinualScenario:
        return self.build(features, **opts)

    def validation_options(self, scenario: ContinualScenario, *, seed_offset: int = 1000) -> dict:
        if scenario.builder != self.name:
            raise ValueError(f"scenario {scenario.name!r} was built by {scenario.builder!r}, not {self.name!r}")
        return self.validation_rule(scenario, seed_offset=seed_offset)


SCENARIOS: dict[str, ScenarioBuilder] = {b.name: b for b in (
    ScenarioBuilder("speaker-incremental", speaker_incremental, _same_label_set),
    ScenarioBuilder("language-incremental", language_incremental, _same_label_set),
    ScenarioBuilder("class-incremental", class_incremental, _same_class_steps),
    ScenarioBuilder("fewshot-incremental", fewshot_incremental, _base_rule),
)}


def builder_of(scenario: ContinualScenario) -> ScenarioBuilder:
    """The registry entry that built ``scenario``."""
    try:
        return SCENARIOS[scenario.builder]
    except KeyError:
        raise KeyError(f"no builder {scenario.builder!r} for scenario {scenario.name!r}; known: "
                       f"{', '.join(sorted(SCENARIOS))}") from None


def make_scenario(name: str, features, **opts) -> ContinualScenario:
    """Build the registered scenario ``name`` (a key of ``SCENARIOS``) from ``features``."""
    try:
        builder = SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}") from None
    return builder(features, **opts)
