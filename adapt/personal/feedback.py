"""Opt-in feedback aggregation: consenting users' statistics folded into new global head versions.

A deployed ``Personalizer`` learns per user; this module lets the *global* head learn from many
users' corrections, without audio and without a single clip's embedding:

* **Opt-in twice.** A tenant enables feedback (``set_tenant_policy``) and each user consents
  (``set_consent``); ``submit`` refuses anything else. What is submitted is a copy of the user's
  profile statistics (``UserState``: per emotion a clip count and the mean embedding, the running
  mean and variance of all their clips) — what the profile store already holds, nothing more.
* **Pending until folded.** Submissions wait in ``<root>/<chain>/pending/`` (one file per user,
  named by a hash of tenant and user id). ``forget(tenant, user)`` or withdrawing consent deletes
  the user's pending file; once folded, a user's statistics exist only inside an aggregate of at
  least ``min_users`` users (a version's class means and normalization prior) and cannot be
  taken out again.
* **A continual step on the head.** ``fold`` merges the pending statistics into the current head
  of the chain with the streaming-LDA update (Hayes & Kanan's SLDA, the update
  ``strategies.slda.MinibatchStreamingLDA`` runs on minibatches): each class mean is a running
  mean in which the current head's mean counts as ``prior_clips`` clips and every user adds their
  clip count times their class mean in head space (standardized with their own statistics,
  exactly as the Personalizer scores them); the normalization prior (average speaker centre and
  within-speaker variance) is a running mean over speakers in which the current prior counts as
  ``prior_speakers`` speakers. The shared covariance stays frozen (SLDA's
  ``streaming_update_sigma=False``): profiles hold no per-class second moments, and collecting
  them would mean storing more than a profile does. The update is written here, on the sufficient
  statistics, because ``adapt`` must not import ``strategies`` (the runtime works without
  Avalanche and torch); the maths is the same running-mean merge.
* **Gated versions.** A candidate is scored on a frozen held-out set (``FrozenSet``: labelled
  embeddings of speakers no version was trained on, e.g. held-out speakers of the training
  corpora) on the ``paths`` ``"unenrolled"`` (no profile) and ``"observed"`` (each speaker
  standardized with their own clips, no labels). It replaces the current version only if its UA
  on every path is within ``tolerance`` (1 point) of both the current version's and the base
  head's; otherwise it is recorded as rejected and the current version keeps serving (the
  automatic rollback). ``rollback`` returns a chain to an earlier version by hand. Every version,
  accepted or not, is listed by ``versions`` with its gate scores.
* **Tenant isolation.** Each tenant has its own chain: its feedback changes only the head that
  ``head(tenant)`` serves to it. A tenant whose policy says ``scope="shared"`` sends its feedback
  to the shared chain, which serves every tenant without a version of its own; nothing else
  crosses tenants.
* **Profiles stay valid.** A version keeps the base head's projection, dimensions and classes, so
  every stored ``UserState`` (raw-space statistics) scores under every version of its chain.

Files (``root``): ``<chain>/policy.json``, ``<chain>/consent.json`` (hashed user ids ->
consent), ``<chain>/pending/<hash>.sau``, ``<chain>/versions/index.json`` and
``v<NNNN>.npz``. One aggregator process per ``root`` (writes are atomic renames, not locked).

Example:
    >>> import numpy as np, tempfile
    >>> from adapt.personal import GlobalHead, UserState
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(120, 6)).astype("float32"); y = np.array(["angry", "sad"] * 60)
    >>> spk = np.repeat(list("abcdef"), 20)
    >>> head = GlobalHead.fit(X[:80], y[:80], speakers=spk[:80], dim=4)
    >>> agg = FeedbackAggregator(tempfile.mkdtemp(), head, FrozenSet(X[80:], y[80:], spk[80:]), min_users=1)
    >>> agg.set_tenant_policy("acme", enabled=True)
    >>> agg.set_consent("acme", "alice", True)
    >>> agg.submit("acme", "alice", UserState.empty(6).add(X[:10], y[:10].tolist()))
    >>> v = agg.fold("acme"); (v.number, v.users)
    (1, 1)
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConsentError, InvalidStateError, UnknownUserError
from ..metrics import unweighted_average_recall
from ..stats import STD_FLOOR
from ..store import check_tenant, check_user
from .global_head import GlobalHead
from .user_state import UserState

__all__ = ["FeedbackAggregator", "FrozenSet", "HeadVersion", "ConsentError", "SHARED", "PATHS"]

#: the chain that serves every tenant without a version of its own
SHARED = "_shared"
PATHS = ("unenrolled", "observed")


@dataclass(frozen=True)
class FrozenSet:
    """Labelled embeddings ``X`` [N, D] of held-out speakers (``y``, ``speakers`` [N]); ``groups``
    [N] (e.g. corpora; default one group) give each speaker the label set of their group."""

    X: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.X)
        if np.ndim(self.X) != 2 or len(self.y) != n or len(self.speakers) != n or \
                (self.groups is not None and len(self.groups) != n) or n == 0:
            raise ValueError(f"FrozenSet needs X [N, D] and y, speakers (, groups) [N] with N > 0, got "
                             f"{np.shape(self.X)}, {len(self.y)}, {len(self.speakers)}")

    def score(self, head: GlobalHead, paths: Sequence[str] = PATHS) -> dict[str, float]:
        """UA (pooled over the set's clips) of ``head`` on each path."""
        X = np.asarray(self.X, np.float32)
        y, spk = np.asarray(self.y).astype(str), np.asarray(self.speakers).astype(str)
        grp = np.zeros(len(y), str) if self.groups is None else np.asarray(self.groups).astype(str)
        out = {}
        for path in paths:
            if path not in PATHS:
                raise KeyError(f"unknown path {path!r}; known: {list(PATHS)}")
            pred = np.empty(len(y), dtype=object)
            for g in np.unique(grp):
                labels = [c for c in head.classes if c in set(y[grp == g].tolist())]
                for s in np.unique(spk[grp == g]):
                    m = (spk == s) & (grp == g)
                    st = UserState.empty(head.state_dim).observe(X[m]) if path == "observed" else None
                    classes, logits = head.predict_logits(X[m], st, None, labels)
                    pred[m] = np.asarray(classes)[np.argmax(logits, axis=1)]
            keep = np.isin(y, head.classes)
            out[path] = float(unweighted_average_recall(y[keep], pred[keep].astype(str)))
        return out


@dataclass(frozen=True)
class HeadVersion:
    """One entry of a chain: ``number`` (0 = the base head), ``parent``, ``accepted`` (serves if
    it is the latest accepted one), ``users`` / ``clips`` folded in, ``gate`` (scores on the
    frozen set: per path base / current / candidate, and their means ``reference`` /
    ``candidate``), ``created`` (UTC epoch seconds)."""

    chain: str
    number: int
    parent: int
    accepted: bool
    users: int
    clips: int
    gate: dict
    created: float
    note: str = ""


def _hash(tenant: str, user: str) -> str:
    return hashlib.sha256(f"{tenant}\0{user}".encode()).hexdigest()[:32]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class FeedbackAggregator:
    """Consent, pending statistics and gated head versions under ``root`` (module docstring).

    Arguments:
        root: a folder (created).
        base: the global head every chain starts from (version 0).
        frozen: the ``FrozenSet`` every candidate is scored on.
        prior_clips: weight, in clips, of the current class mean in a fold (``inf``: class means
            stay as they are).
        prior_speakers: weight, in speakers, of the current normalization prior in a fold
            (``inf``: the prior stays as it is).
        min_users: a fold needs pending statistics of at least this many users.
        tolerance: largest UA drop (fraction: 0.01 = 1 point) a candidate may show on the frozen set.
        paths: the frozen-set paths the gate checks.
        own_statistics: standardize a user's class means with their own centre and spread (as the
            head's training speakers were) rather than the Personalizer's shrunk normalizer.

    The defaults (class means frozen, the prior with 2 pseudo-speakers) were chosen by
    ``scenarios.lifelong.select_feedback`` (leave one training corpus out): on held-out corpora,
    moving the class means toward a few users' means lowered the next users' UA, moving the
    normalization prior raised it (BENCHMARKS.md, "Lifelong").
    """

    def __init__(self, root: str | os.PathLike, base: GlobalHead, frozen: FrozenSet, *,
                 prior_clips: float = float("inf"), prior_speakers: float = 2.0, min_users: int = 3, tolerance: float = 0.01,
                 paths: Sequence[str] = PATHS, own_statistics: bool = True):
        if not isinstance(base, GlobalHead):
            raise TypeError(f"base must be a GlobalHead, got {type(base).__name__}")
        if not isinstance(frozen, FrozenSet):
            raise TypeError(f"frozen must be a FrozenSet, got {type(frozen).__name__}")
        for name, v in (("prior_clips", prior_clips), ("prior_speakers", prior_speakers), ("tolerance", tolerance)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or np.isnan(v) or v < 0 or \
                    (np.isinf(v) and name == "tolerance"):
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if isinstance(min_users, bool) or not isinstance(min_users, int) or min_users < 1:
            raise ValueError(f"min_users must be an integer >= 1, got {min_users!r}")
        unknown = [p for p in paths if p not in PATHS]
        if unknown or not paths:
            raise ValueError(f"paths must be a non-empty subset of {list(PATHS)}, got {list(paths)}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.base, self.frozen = base, frozen
        self.prior_clips, self.prior_speakers = float(prior_clips), float(prior_speakers)
        self.min_users, self.tolerance, self.paths = min_users, float(tolerance), tuple(paths)
        self.own_statistics = bool(own_statistics)
        self._base_scores: dict[str, float] | None = None

    # -- files ------------------------------------------------------------------------------
    def _dir(self, chain: str, *parts: str) -> Path:
        d = self.root.joinpath(chain, *parts)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _read_json(self, path: Path, default: Any) -> Any:
        if not path.exists():
            return default
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise InvalidStateError(f"corrupt feedback file {path}: {exc}") from None

    def _write_json(self, path: Path, obj: Any) -> None:
        _write_atomic(path, json.dumps(obj, indent=1, sort_keys=True).encode())

    # -- policy and consent -------------------------------------------------------------------
    def set_tenant_policy(self, tenant: str, *, enabled: bool, scope: str = "tenant") -> None:
        """Enable (or disable) feedback for ``tenant``; ``scope``: ``"tenant"`` (its own chain:
        its feedback changes only its own head) or ``"shared"`` (its feedback goes to the shared
        chain, which serves every tenant without a version of its own)."""
        tenant = check_tenant(tenant)
        if scope not in ("tenant", "shared"):
            raise ValueError(f"scope must be 'tenant' or 'shared', got {scope!r}")
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, got {enabled!r}")
        self._write_json(self._dir(tenant) / "policy.json", {"enabled": enabled, "scope": scope})

    def policy(self, tenant: str) -> dict:
        """``{"enabled": bool, "scope": str}`` (disabled unless set)."""
        return self._read_json(self._dir(check_tenant(tenant)) / "policy.json", {"enabled": False, "scope": "tenant"})

    def _chain(self, tenant: str) -> str:
        return SHARED if self.policy(tenant)["scope"] == "shared" else tenant

    def set_consent(self, tenant: str, user: str, consent: bool) -> None:
        """Record ``user``'s consent; withdrawing it deletes their pending statistics."""
        tenant, user = check_tenant(tenant), check_user(user)
        if not isinstance(consent, bool):
            raise TypeError(f"consent must be a bool, got {consent!r}")
        path = self._dir(tenant) / "consent.json"
        table = self._read_json(path, {})
        table[_hash(tenant, user)] = consent
        self._write_json(path, table)
        if not consent:
            self.forget(tenant, user, missing_ok=True)

    def has_consent(self, tenant: str, user: str) -> bool:
        tenant, user = check_tenant(tenant), check_user(user)
        return bool(self._read_json(self._dir(tenant) / "consent.json", {}).get(_hash(tenant, user), False))

    # -- pending statistics -------------------------------------------------------------------
    def _pending_file(self, tenant: str, user: str) -> Path:
        return self._dir(self._chain(tenant), "pending") / f"{_hash(tenant, user)}.sau"

    def submit(self, tenant: str, user: str, state: UserState) -> None:
        """Queue a consenting user's statistics (a copy of their profile; a later submission of the
        same user replaces the earlier one). Raises ``ConsentError`` without both opt-ins."""
        tenant, user = check_tenant(tenant), check_user(user)
        if not self.policy(tenant)["enabled"]:
            raise ConsentError(f"tenant {tenant!r} has not enabled feedback (set_tenant_policy)")
        if not self.has_consent(tenant, user):
            raise ConsentError(f"user {user!r} of tenant {tenant!r} has not consented to feedback")
        if not isinstance(state, UserState):
            raise TypeError(f"state must be a UserState, got {type(state).__name__}")
        if state.dim != self.base.state_dim:
            raise InvalidStateError(f"user statistics have dimension {state.dim}, the head keeps {self.base.state_dim}")
        UserState.from_json(state.to_json())   # the same plausibility checks as an import
        _write_atomic(self._pending_file(tenant, user), state.to_bytes())

    def forget(self, tenant: str, user: str, *, missing_ok: bool = False) -> bool:
        """Delete ``user``'s pending statistics and their consent record (what is already folded
        into a version stays there, inside an aggregate of at least ``min_users`` users).

        Returns whether pending statistics were deleted."""
        tenant, user = check_tenant(tenant), check_user(user)
        consent = self._dir(tenant) / "consent.json"
        table = self._read_json(consent, {})
        if table.pop(_hash(tenant, user), None) is not None:
            self._write_json(consent, table)
        path = self._pending_file(tenant, user)
        if path.exists():
            path.unlink()
            return True
        if not missing_ok:
            raise UnknownUserError(f"no pending feedback of user {user!r} in tenant {tenant!r}")
        return False

    def pending(self, tenant: str) -> int:
        """How many users' statistics wait for the next fold of ``tenant``'s chain."""
        return len(list(self._dir(self._chain(check_tenant(tenant)), "pending").glob("*.sau")))

    # -- versions -----------------------------------------------------------------------------
    def versions(self, tenant: str) -> list[HeadVersion]:
        """Every version of ``tenant``'s chain (``SHARED`` names the shared chain), oldest first."""
        chain = tenant if tenant == SHARED else self._chain(check_tenant(tenant))
        return self._index(chain)

    def _index(self, chain: str) -> list[HeadVersion]:
        return [HeadVersion(**v) for v in self._read_json(self._dir(chain, "versions") / "index.json", [])]

    def _current(self, chain: str) -> tuple[int, GlobalHead]:
        live = [v for v in self._index(chain) if v.accepted]
        if not live:
            return 0, self.base
        n = live[-1].number
        return n, GlobalHead.load(self._dir(chain, "versions") / f"v{n:04d}.npz")

    def head(self, tenant: str) -> GlobalHead:
        """The head ``tenant`` is served: the latest accepted version of its own chain, else of
        the shared chain, else the base head."""
        tenant = check_tenant(tenant) if tenant != SHARED else tenant
        for chain in ((tenant, SHARED) if tenant != SHARED else (SHARED,)):
            n, h = self._current(chain)
            if n:
                return h
        return self.base

    def rollback(self, tenant: str, to: int) -> None:
        """Serve version ``to`` of ``tenant``'s chain again (later versions are marked rejected)."""
        chain = tenant if tenant == SHARED else self._chain(check_tenant(tenant))
        index = self._read_json(self._dir(chain, "versions") / "index.json", [])
        if to != 0 and not any(v["number"] == to and v["accepted"] for v in index):
            raise KeyError(f"no accepted version {to} in chain {chain!r}; known: "
                           f"{[v['number'] for v in index if v['accepted']]}")
        for v in index:
            if v["number"] > to and v["accepted"]:
                v["accepted"], v["note"] = False, f"rolled back to {to}"
        self._write_json(self._dir(chain, "versions") / "index.json", index)

    def candidate(self, tenant: str) -> GlobalHead:
        """The head a fold of ``tenant``'s chain would propose now (not gated, not recorded)."""
        chain = tenant if tenant == SHARED else self._chain(check_tenant(tenant))
        _, cur = self._current(chain)
        states = [UserState.from_bytes(p.read_bytes()) for p in sorted(self._dir(chain, "pending").glob("*.sau"))]
        return self._merge(cur, states)[0]

    def _merge_counts(self, states: Sequence[UserState], head: GlobalHead) -> tuple[int, int]:
        clips = sum(int(sum(n for c, n in zip(s.labels, s.counts) if c in head.classes)) for s in states)
        return len(states), clips

    def _merge(self, head: GlobalHead, states: Sequence[UserState]) -> tuple[GlobalHead]:
        """The streaming-LDA merge of ``states`` into ``head`` (module docstring)."""
        C, d = head.means.shape
        n_c, s_c = np.zeros(C), np.zeros((C, d))
        centres, variances = [], []
        index = {c: i for i, c in enumerate(head.classes)}
        for st in states:
            rows = [(index[c], j) for j, c in enumerate(st.labels) if c in index and st.counts[j] > 0]
            if rows:
                if self.own_statistics and st.n >= 2:
                    # as the head's training speakers were: with their own centre and spread
                    mu = np.asarray(st.mean, np.float32)
                    sd = np.maximum(np.sqrt(np.asarray(st.m2) / st.n), STD_FLOOR).astype(np.float32)
                else:
                    mu, sd = head.normalizer(st.n, st.mean, st.m2, labelled=True)
                js = [j for _, j in rows]
                M = head.to_head_space(st.sums[js] / st.counts[js][:, None], mu, sd).astype(np.float64)
                for (i, j), m in zip(rows, M):
                    n_c[i] += st.counts[j]
                    s_c[i] += st.counts[j] * m
            if st.n >= 2:
                centres.append(np.asarray(st.mean, np.float64))
                variances.append(np.asarray(st.m2, np.float64) / st.n)
        old = head.means.astype(np.float64)
        if np.isinf(self.prior_clips):
            means = old                                      # prior_clips = inf: the class means are frozen
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                means = (self.prior_clips * old + s_c) / (self.prior_clips + n_c)[:, None]
            means = np.where(n_c[:, None] > 0, means, old)     # a class nobody corrected keeps its mean
        pm, pv = head.prior_mean.astype(np.float64), head.prior_var.astype(np.float64)
        if centres and not np.isinf(self.prior_speakers):
            k = self.prior_speakers
            pm = (k * pm + np.sum(centres, axis=0)) / (k + len(centres))
            pv = (k * pv + np.sum(variances, axis=0)) / (k + len(centres))
        info = dict(head.info)
        info["feedback"] = {"users": len(states), "clips_per_class": {c: int(n) for c, n in zip(head.classes, n_c)}}
        cand = replace(head, means=means.astype(np.float32), prior_mean=pm.astype(np.float32),
                       prior_var=np.maximum(pv, 1e-12).astype(np.float32), info=info)
        return (cand,)

    def fold(self, tenant: str) -> HeadVersion:
        """Fold the pending statistics of ``tenant``'s chain into a candidate, gate it on the frozen
        set, and record it (accepted: it serves from now on and the pending files are deleted;
        rejected: the current version keeps serving, the pending files stay for the next fold)."""
        chain = tenant if tenant == SHARED else self._chain(check_tenant(tenant))
        files = sorted(self._dir(chain, "pending").glob("*.sau"))
        if len(files) < self.min_users:
            raise ValueError(f"chain {chain!r} has pending feedback of {len(files)} user(s); a fold needs at least "
                             f"min_users={self.min_users}")
        states = [UserState.from_bytes(p.read_bytes()) for p in files]
        number, cur = self._current(chain)
        (cand,) = self._merge(cur, states)
        users, clips = self._merge_counts(states, cur)
        if self._base_scores is None:
            self._base_scores = self.frozen.score(self.base, self.paths)
        current = self._base_scores if number == 0 else self.frozen.score(cur, self.paths)
        new = self.frozen.score(cand, self.paths)
        ok = all(new[p] >= min(current[p], self._base_scores[p]) - self.tolerance - 1e-12 for p in self.paths)
        gate = {"paths": {p: {"base": self._base_scores[p], "current": current[p], "candidate": new[p]}
                          for p in self.paths},
                "reference": float(np.mean([current[p] for p in self.paths])),
                "candidate": float(np.mean([new[p] for p in self.paths])), "tolerance": self.tolerance}
        index = self._read_json(self._dir(chain, "versions") / "index.json", [])
        n_new = max([v["number"] for v in index], default=0) + 1
        version = HeadVersion(chain=chain, number=n_new, parent=number, accepted=ok, users=users, clips=clips,
                              gate=gate, created=time.time(),
                              note="" if ok else "rejected by the gate: UA on the frozen set dropped")
        if ok:
            cand.save(self._dir(chain, "versions") / f"v{n_new:04d}.npz")
            for p in files:
                p.unlink()
        index.append(asdict(version))
        self._write_json(self._dir(chain, "versions") / "index.json", index)
        return version
