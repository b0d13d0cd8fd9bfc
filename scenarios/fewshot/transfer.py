"""Transfer to unseen corpora: the global head's shrinkage LDA against robust-training alternatives.

``adapt.personal.GlobalHead`` scores a clip with a shrinkage LDA in a speaker-standardized PCA
space. This module asks whether a *trained* classifier in the very same space transfers better to
a corpus it never saw. Every candidate gets the same inputs: ``GlobalHead.fit`` on the training
rows gives the projection and the speaker prior; the training rows are mapped to head space with
each training speaker standardized by their own emotion-balanced moments (exactly as
``GlobalHead.fit`` does, ``training_head_space``); a test-time user is standardized as the
``Personalizer`` does, ``head.normalizer(n, mean, m2, labelled=False)`` from the moments of their
U observed clips (U = 0: the prior), then ``head.to_head_space`` (``user_head_space``).

Candidates (``CANDIDATES``):

* ``lda`` — the global head itself (``head.predict_proba``);
* ``logreg`` — scikit-learn ``LogisticRegression`` (``class_weight="balanced"``) on head space;
* ``mlp`` — the one-hidden-layer torch classifier all torch candidates share, plain ERM
  (class-balanced cross-entropy); the reference that separates a method from its architecture;
* ``dann`` — the same network with a gradient-reversal corpus discriminator on its hidden layer
  (Ganin & Lempitsky 2015; ``grl`` scales the reversed gradient, ramped up as in the paper);
* ``group-dro`` — the same network trained with group DRO over corpora (Sagawa et al. 2020:
  exponentiated-gradient weights ``q_g <- q_g exp(eta L_g)`` on the per-corpus losses);
* ``mixup`` — the same network trained on cross-corpus mixup (each clip mixed with a clip of a
  *different* corpus, ``lambda ~ Beta(alpha, alpha)``, soft labels).

``loco_transfer`` scores every candidate for every speaker of a held-out corpus (half of each
speaker's clips, stratified by emotion, as test; U clips of the other half observed without labels),
predictions restricted to the held-out corpus's emotions that the head knows.
``select_inner`` chooses each candidate's settings (``GRIDS``) by leaving one *training* corpus
out; it never looks at the held-out corpus. Models are cached by their set of training corpora
(``ModelCache``), so the inner folds of two outer folds that share a training set share models.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.array(["angry", "sad"] * 60); X = rng.normal(size=(120, 6)) + (y == "sad")[:, None]
    >>> spk = np.repeat([f"s{i}" for i in range(6)], 20); corp = np.repeat(["a", "b"], 60)
    >>> scorer = fit_candidate("logreg", X, y, spk, corp, dim=4)
    >>> labels, P = scorer.predict_proba(X[:3], None, ["angry", "sad"])
    >>> labels, P.shape
    (('angry', 'sad'), (3, 2))
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from adapt.metrics import unweighted_average_recall as ua
from adapt.personal import GlobalHead, UserState
from adapt.stats import STD_FLOOR

__all__ = ["CANDIDATES", "GRIDS", "TorchConfig", "Scorer", "GradReverse", "grad_reverse", "dro_update",
           "training_head_space", "user_head_space", "fit_candidate", "speaker_halves", "loco_transfer",
           "select_inner", "ModelCache", "TransferRow", "mean_by_corpus"]

CANDIDATES = ("lda", "logreg", "mlp", "dann", "group-dro", "mixup")
#: each candidate's inner-loop grid (a candidate missing here has fixed settings)
GRIDS: dict[str, list[dict]] = {
    "logreg": [{"C": 0.01}, {"C": 0.1}],
    "dann": [{"grl": 0.1}, {"grl": 1.0}],
    "group-dro": [{"eta": 0.01}, {"eta": 0.1}],
    "mixup": [{"alpha": 0.2}, {"alpha": 1.0}],
}


@dataclass(frozen=True)
class TorchConfig:
    """The shared one-hidden-layer network and its training (fixed, not tuned per fold)."""

    hidden: int = 128
    dropout: float = 0.2
    epochs: int = 30
    batch: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0


# -- the shared feature space ---------------------------------------------------------------------
def _balanced_moments(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Emotion-balanced mean and variance (as ``GlobalHead.fit`` computes them)."""
    _, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    w = 1.0 / (counts[inv] * len(counts))
    mean = w @ X
    return mean, w @ (X - mean) ** 2


def training_head_space(head: GlobalHead, X, y, speakers, corpora, *, min_emotions: int = 2) -> np.ndarray:
    """Training rows ``[N, D]`` in ``head``'s space ``[N, d]``, each speaker standardized with their
    own emotion-balanced moments (a speaker with fewer than ``min_emotions`` emotions or one clip:
    their corpus's pooled moments), exactly as ``GlobalHead.fit`` standardizes them."""
    X = np.asarray(X, np.float64)
    y, spk, grp = (np.asarray(a).astype(str) for a in (y, speakers, corpora))
    Z = np.empty_like(X)
    pooled: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for s in np.unique(spk):
        rows = np.flatnonzero(spk == s)
        if len(np.unique(y[rows])) >= min_emotions and len(rows) >= 2:
            mu, var = _balanced_moments(X[rows], y[rows])
        else:
            g = grp[rows[0]]
            if g not in pooled:
                pooled[g] = _balanced_moments(X[grp == g], y[grp == g])
            mu, var = pooled[g]
        Z[rows] = (X[rows] - mu) / np.maximum(np.sqrt(var), STD_FLOOR)
    center, W = head.projection
    return ((Z - center) @ W).astype(np.float32)


def _user_state(head: GlobalHead, pool: np.ndarray | None) -> UserState | None:
    if pool is None or len(pool) == 0:
        return None
    return UserState.empty(head.input_dim).observe(np.asarray(pool, np.float64))


def user_head_space(head: GlobalHead, X, pool=None) -> np.ndarray:
    """A test user's clips ``X`` in head space, the user standardized as the ``Personalizer`` does
    from the moments of their observed clips ``pool`` (``None`` / empty: the training prior)."""
    st = _user_state(head, pool)
    if st is None:
        mu, sd = head.normalizer(0, None, None, labelled=False)
    else:
        mu, sd = head.normalizer(st.n, st.mean, st.m2, labelled=False)
    return head.to_head_space(X, mu, sd)


# -- scorers --------------------------------------------------------------------------------------
@dataclass
class Scorer:
    """A trained candidate: ``predict_proba(X, pool, labels)`` -> ``(labels, P [N, len(labels)])``
    for clips ``X`` of one user whose observed, unlabelled clips are ``pool`` (``None``: none)."""

    name: str
    head: GlobalHead
    classes: tuple[str, ...]
    logits_fn: Callable[[np.ndarray], np.ndarray] | None = None   # head-space rows -> logits over classes
    params: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def predict_proba(self, X, pool, labels: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
        labels = tuple(labels)
        missing = [c for c in labels if c not in self.classes]
        if missing or not labels:
            raise ValueError(f"cannot score {missing or 'an empty label set'}; the candidate knows {self.classes}")
        if self.logits_fn is None:          # the global head itself
            return self.head.predict_proba(X, _user_state(self.head, pool), None, labels)
        L = self.logits_fn(user_head_space(self.head, X, pool))[:, [self.classes.index(c) for c in labels]]
        L = L - L.max(axis=1, keepdims=True)
        P = np.exp(L)
        return labels, (P / P.sum(axis=1, keepdims=True)).astype(np.float32)


def _torch():
    import torch

    return torch


def _make_grl():
    torch = _torch()

    class GradReverse(torch.autograd.Function):
        """Identity forward, gradient times ``-lam`` backward (Ganin & Lempitsky 2015).

        Written here because no maintained library for it is installed in this project (torch has no
        built-in gradient-reversal layer); it is six lines."""

        @staticmethod
        def forward(ctx, x, lam: float):
            ctx.lam = float(lam)
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            return -ctx.lam * grad, None

    return GradReverse


_GRL = None


def GradReverse():
    """The gradient-reversal ``torch.autograd.Function`` (built lazily so importing this module
    does not import torch)."""
    global _GRL
    if _GRL is None:
        _GRL = _make_grl()
    return _GRL


def grad_reverse(x, lam: float = 1.0):
    """``x`` unchanged forward; its gradient multiplied by ``-lam`` backward."""
    return GradReverse().apply(x, lam)


def dro_update(q: np.ndarray, losses: np.ndarray, eta: float) -> np.ndarray:
    """One exponentiated-gradient step of group DRO (Sagawa et al. 2020): ``q_g exp(eta L_g)``,
    renormalized (works on numpy arrays and torch tensors)."""
    w = q * (np.exp(eta * losses) if isinstance(losses, np.ndarray) else (eta * losses).exp())
    return w / w.sum()


def _class_weights(yi: np.ndarray, C: int) -> np.ndarray:
    counts = np.bincount(yi, minlength=C).astype(np.float64)
    w = np.where(counts > 0, len(yi) / (C * np.maximum(counts, 1)), 0.0)
    return w.astype(np.float32)


def _train_torch(kind: str, H: np.ndarray, yi: np.ndarray, gi: np.ndarray, C: int, G: int, params: dict,
                 cfg: TorchConfig) -> Callable[[np.ndarray], np.ndarray]:
    """Train the shared network with ``kind`` in {"mlp", "dann", "group-dro", "mixup"}; returns the
    logits function on (scaled) head-space rows."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    d = H.shape[1]
    enc = nn.Sequential(nn.Linear(d, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout))
    cls = nn.Linear(cfg.hidden, C)
    mods = [enc, cls]
    if kind == "dann":
        disc = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, G))
        mods.append(disc)
    params_all = [p for m in mods for p in m.parameters()]
    opt = torch.optim.AdamW(params_all, lr=cfg.lr, weight_decay=cfg.weight_decay)
    Ht, yt, gt = torch.from_numpy(H), torch.from_numpy(yi.astype(np.int64)), torch.from_numpy(gi.astype(np.int64))
    cw = torch.from_numpy(_class_weights(yi, C))
    gw = torch.from_numpy(_class_weights(gi, G))
    # per-corpus class weights: each corpus's loss is class-balanced within the corpus (group DRO)
    cw_g = torch.from_numpy(np.stack([_class_weights(yi[gi == g], C) for g in range(G)]))
    q = torch.full((G,), 1.0 / G)
    N = len(H)
    steps_per_epoch = max(1, int(np.ceil(N / cfg.batch)))
    total = cfg.epochs * steps_per_epoch
    # mixup partners: any row of another corpus (a single corpus: any row)
    others = [np.flatnonzero(gi != g) if (gi != g).any() else np.arange(N) for g in range(G)]
    step = 0
    for m in mods:
        m.train()
    for _ in range(cfg.epochs):
        perm = rng.permutation(N)
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch:(b + 1) * cfg.batch]
            if len(idx) < 2:
                continue
            x, yb, gb = Ht[idx], yt[idx], gt[idx]
            if kind == "mixup":
                alpha = float(params["alpha"])
                other = np.empty(len(idx), dtype=np.int64)
                for g in np.unique(gi[idx]):
                    sel = gi[idx] == g
                    other[sel] = others[g][rng.integers(0, len(others[g]), size=int(sel.sum()))]
                lam = torch.from_numpy(rng.beta(alpha, alpha, size=len(idx)).astype(np.float32))[:, None]
                xo, yo = Ht[other], yt[other]
                x = lam * x + (1 - lam) * xo
                soft = lam * F.one_hot(yb, C).float() + (1 - lam) * F.one_hot(yo, C).float()
                logp = F.log_softmax(cls(enc(x)), dim=1)
                wrow = soft @ cw
                loss = -((soft * logp).sum(1) * wrow).sum() / wrow.sum()
            elif kind == "group-dro":
                logits = cls(enc(x))
                per = F.cross_entropy(logits, yb, reduction="none") * cw_g[gb, yb]
                present = torch.zeros(G, dtype=torch.bool)
                losses = torch.zeros(G)
                for g in range(G):
                    m = gb == g
                    if m.any():
                        present[g] = True
                        losses[g] = per[m].sum() / cw_g[g][yb[m]].sum()
                with torch.no_grad():
                    upd = dro_update(q, losses.detach() * present, float(params["eta"]))
                    q = torch.where(present, upd, q)
                    q = q / q.sum()
                loss = (q * losses).sum()
            else:
                hid = enc(x)
                loss = (F.cross_entropy(cls(hid), yb, reduction="none") * cw[yb]).sum() / cw[yb].sum()
                if kind == "dann":
                    p = step / max(total - 1, 1)
                    lam_grl = float(params["grl"]) * (2.0 / (1.0 + np.exp(-10 * p)) - 1.0)
                    dlog = disc(grad_reverse(hid, lam_grl))
                    loss = loss + (F.cross_entropy(dlog, gb, reduction="none") * gw[gb]).sum() / gw[gb].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    for m in mods:
        m.eval()

    def logits(Hq: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return cls(enc(torch.from_numpy(np.asarray(Hq, np.float32)))).numpy().astype(np.float64)

    return logits


def fit_candidate(name: str, X, y, speakers, corpora, *, params: dict | None = None, head: GlobalHead | None = None,
                  H: np.ndarray | None = None, dim: int = 256, lda_shrinkage: float = 0.3,
                  torch_config: TorchConfig | None = None) -> Scorer:
    """Train candidate ``name`` (``CANDIDATES``) on the training rows; ``params``: its settings
    (default: the first of ``GRIDS[name]``). ``head`` / ``H``: a ``GlobalHead`` already fitted on these
    rows and their head-space features (``training_head_space``), to share across candidates."""
    from adapt.threads import torch_threads

    if name not in CANDIDATES:
        raise KeyError(f"unknown candidate {name!r}; choose from {CANDIDATES}")
    params = dict(params if params is not None else (GRIDS.get(name) or [{}])[0])
    y = np.asarray(y).astype(str)
    corpora = np.asarray(corpora).astype(str)
    t0 = time.perf_counter()
    if head is None:
        head = GlobalHead.fit(X, y, speakers=speakers, corpora=corpora, dim=dim, lda_shrinkage=lda_shrinkage)
    classes = head.classes
    if name == "lda":
        return Scorer(name, head, classes, None, params, {"train_s": time.perf_counter() - t0})
    if H is None:
        H = training_head_space(head, X, y, speakers, corpora)
    # one global scale (keeps the PCA's variance structure; L2 and Adam see unit-sized inputs)
    scale = float(np.sqrt(np.mean(H.astype(np.float64) ** 2))) or 1.0
    Hs = (H / scale).astype(np.float32)
    yi = np.searchsorted(np.asarray(classes), y)
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=float(params.get("C", 0.1)), class_weight="balanced", max_iter=500)
        clf.fit(Hs, yi)
        order = np.asarray(clf.classes_)
        W = np.zeros((len(classes), Hs.shape[1])); b = np.full(len(classes), -1e9)
        W[order], b[order] = clf.coef_, clf.intercept_

        def fn(Hq, W=W, b=b):
            return (np.asarray(Hq, np.float64) / scale) @ W.T + b
    else:
        groups = sorted(set(corpora.tolist()))
        gi = np.searchsorted(np.asarray(groups), corpora)
        cfg = torch_config or TorchConfig()
        with torch_threads(1):
            inner = _train_torch(name, Hs, yi, gi, len(classes), len(groups), params, cfg)

        def fn(Hq, inner=inner):
            return inner(np.asarray(Hq, np.float32) / scale)
    return Scorer(name, head, classes, fn, params, {"train_s": time.perf_counter() - t0})


# -- the protocol ---------------------------------------------------------------------------------
def speaker_halves(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(test, pool)`` positions of one speaker's clips: per emotion, a seeded half (rounded up) as
    test, the rest as the pool of unlabelled clips the user may be observed on."""
    y = np.asarray(y).astype(str)
    rng = np.random.default_rng(seed)
    test, pool = [], []
    for c in sorted(set(y.tolist())):
        r = rng.permutation(np.flatnonzero(y == c))
        k = int(np.ceil(len(r) / 2))
        test += r[:k].tolist(); pool += r[k:].tolist()
    return np.asarray(sorted(test), int), np.asarray(sorted(pool), int)


@dataclass(frozen=True)
class TransferRow:
    """UA of one held-out speaker for every ``candidate@U<u>``."""

    corpus: str
    speaker: str
    scores: dict[str, float]


class ModelCache:
    """Trained scorers keyed by (training corpora, candidate, settings): a fold's model is trained
    once however many (inner or outer) evaluations use it."""

    def __init__(self, table, *, dim: int = 256, lda_shrinkage: float = 0.3, torch_config: TorchConfig | None = None,
                 verbose: bool = False):
        self.table, self.dim, self.lda_shrinkage = table, dim, lda_shrinkage
        self.torch_config = torch_config or TorchConfig()
        self.verbose = verbose
        self._heads: dict = {}
        self._models: dict = {}
        self.train_s = 0.0

    def _base(self, train_corpora: frozenset):
        if train_corpora not in self._heads:
            t0 = time.perf_counter()
            t = self.table
            rows = np.flatnonzero(np.isin(np.asarray(t.corpora).astype(str), sorted(train_corpora)))
            head = GlobalHead.fit(t.X[rows], t.y[rows], speakers=t.speakers[rows], corpora=t.corpora[rows],
                                  dim=self.dim, lda_shrinkage=self.lda_shrinkage)
            H = training_head_space(head, t.X[rows], t.y[rows], t.speakers[rows], t.corpora[rows])
            self._heads[train_corpora] = (rows, head, H)
            self.train_s += time.perf_counter() - t0
        return self._heads[train_corpora]

    def get(self, train_corpora, name: str, params: dict | None = None) -> Scorer:
        key_c = frozenset(train_corpora)
        params = dict(params if params is not None else (GRIDS.get(name) or [{}])[0])
        key = (key_c, name, tuple(sorted(params.items())))
        if key not in self._models:
            rows, head, H = self._base(key_c)
            t = self.table
            s = fit_candidate(name, t.X[rows], t.y[rows], t.speakers[rows], t.corpora[rows], params=params,
                              head=head, H=H, torch_config=self.torch_config)
            self.train_s += s.info["train_s"]
            if self.verbose:
                print(f"    trained {name} {params} on {sorted(key_c)} in {s.info['train_s']:.1f} s", flush=True)
            self._models[key] = s
        return self._models[key]


def loco_transfer(table, held_out: str, chosen: dict[str, dict], *, cache: ModelCache,
                  train_corpora: Sequence[str] | None = None, unlabelled: Sequence[int] = (0, 10),
                  speakers: Sequence[str] | None = None, min_clips: int = 2, seed: int = 0) -> list[TransferRow]:
    """Every candidate in ``chosen`` (name -> settings) for every speaker of ``held_out`` with at
    least ``min_clips`` clips, trained on ``train_corpora`` (default: every other corpus of the table).
    Test: a stratified half of the speaker's clips, restricted to the emotions the head knows;
    ``U<u>``: the user observed on ``u`` clips of the other half (fewer where the half is smaller)."""
    corp = np.asarray(table.corpora).astype(str)
    y_all = np.asarray(table.y).astype(str)
    spk_all = np.asarray(table.speakers).astype(str)
    in_c = corp == held_out
    if not in_c.any():
        raise KeyError(f"corpus {held_out!r} is not in the table")
    train_corpora = sorted(set(corp.tolist()) - {held_out}) if train_corpora is None else list(train_corpora)
    if held_out in train_corpora:
        raise ValueError("the held-out corpus cannot be a training corpus")
    models = {n: cache.get(train_corpora, n, p) for n, p in chosen.items()}
    known = set(next(iter(models.values())).classes)
    labels = sorted(set(y_all[in_c].tolist()) & known)
    targets = sorted(set(spk_all[in_c].tolist())) if speakers is None else list(speakers)
    out = []
    for si, spk in enumerate(targets):
        idx = np.flatnonzero(in_c & (spk_all == spk))
        if len(idx) < min_clips:
            continue
        t_pos, p_pos = speaker_halves(y_all[idx], seed + si)
        test, pool = idx[t_pos], idx[p_pos]
        test = test[np.isin(y_all[test], labels)]
        if len(test) == 0:
            continue
        rng = np.random.default_rng(seed + 1000 + si)
        pool_order = rng.permutation(pool)
        res = {}
        for u in unlabelled:
            obs = table.X[pool_order[:u]] if u > 0 and len(pool_order) else None
            for n, m in models.items():
                lab, P = m.predict_proba(table.X[test], obs, labels)
                res[f"{n}@U{u}"] = float(ua(y_all[test], np.asarray(lab)[P.argmax(1)]))
        out.append(TransferRow(held_out, spk, res))
    return out


def mean_by_corpus(rows: Sequence[TransferRow]) -> dict[str, dict[str, tuple[float, int]]]:
    """``{corpus: {candidate@U: (mean UA over speakers, speakers)}}``."""
    out: dict[str, dict] = {}
    for c in dict.fromkeys(r.corpus for r in rows):
        mine = [r for r in rows if r.corpus == c]
        keys = list(dict.fromkeys(k for r in mine for k in r.scores))
        out[c] = {k: (float(np.mean([r.scores[k] for r in mine if k in r.scores])), len(mine)) for k in keys}
    return out


def select_inner(table, held_out: str, *, cache: ModelCache, candidates: Sequence[str] = CANDIDATES,
                 unlabelled: Sequence[int] = (0, 10), max_speakers: int | None = None, seed: int = 0,
                 verbose: bool = False) -> tuple[dict[str, dict], dict[str, list[tuple[dict, float]]]]:
    """Each candidate's settings for the fold that holds out ``held_out``, chosen by leaving one
    *training* corpus out (the others train): the setting with the best mean over inner corpora of
    the mean over ``unlabelled`` of speaker-mean UA wins (ties: the first in ``GRIDS``). The
    held-out corpus is never read. ``max_speakers``: evaluate at most that many (seeded) speakers
    per inner corpus. Returns ``(chosen, {candidate: [(settings, objective), ...]})``."""
    corp = np.asarray(table.corpora).astype(str)
    inner = sorted(set(corp.tolist()) - {held_out})
    chosen, scored = {}, {}
    for name in candidates:
        grid = GRIDS.get(name)
        if not grid or len(grid) == 1:
            chosen[name] = dict((grid or [{}])[0])
            continue
        scored[name] = []
        for params in grid:
            per_corpus = []
            for c in inner:
                spk = sorted(set(np.asarray(table.speakers)[corp == c].astype(str).tolist()))
                if max_speakers is not None and len(spk) > max_speakers:
                    pick = np.random.default_rng(seed).permutation(len(spk))[:max_speakers]
                    spk = [spk[i] for i in sorted(pick)]
                rows = loco_transfer(table, c, {name: params}, cache=cache, train_corpora=[g for g in inner if g != c],
                                     unlabelled=unlabelled, speakers=spk, seed=seed)
                m = mean_by_corpus(rows)[c]
                per_corpus.append(np.mean([m[f"{name}@U{u}"][0] for u in unlabelled]))
            obj = float(np.mean(per_corpus))
            scored[name].append((dict(params), obj))
            if verbose:
                print(f"  inner (held out {held_out}) {name} {params}: {obj:.3f}", flush=True)
        chosen[name] = dict(max(scored[name], key=lambda t: t[1])[0])
    return chosen, scored
