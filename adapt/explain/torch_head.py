"""A differentiable torch copy of ``GlobalHead.predict_proba``'s scoring path, for attribution.

``GlobalHead`` is numpy; gradient-based attribution (captum) needs the embedding -> class scores
step in torch. For a fixed user (and tenant) that step is affine in the embedding ``x`` [D]:

1. ``z = (x - mu) / sd`` with the user's centre and scale (``GlobalHead.normalizer`` of their
   running moments, shrunk toward the tenant's prior when there is one, else the training
   speakers'; an unenrolled user gets the prior itself);
2. ``h = (z - center) @ W`` (the head's PCA, ``GlobalHead.to_head_space``);
3. ``s_k = h . A m_k - 1/2 m_k . A m_k`` for every class-mean row ``m_k`` (``GlobalHead.logits``);
4. logits ``= s @ mix.T / T``: one row per scored class. ``mix`` is the identity except for a
   user without labels in a tenant with its own class means, whose logit of a class is the
   weighted vote of the tenant mean and the global mean (``Shrinkage.global_weight``); ``T`` is
   the head's calibration temperature for the user's path (``GlobalHead.calibration``, enrolled
   or not; 1 for a head without one), so the softmax is the calibrated probability.

``scoring_params`` computes ``mu``, ``sd``, the class-mean rows (the user's means shrunk toward
the global ones by ``Shrinkage.tau``, the tenant's by ``tau_tenant``) and ``mix`` exactly as
``GlobalHead.predict_proba`` does (the three branches: labelled user, tenant vote, global means);
``TorchHead`` evaluates steps 1-4 in float32 torch. ``tests/adapt/test_explain.py`` checks on real
clips that its softmax equals ``GlobalHead.predict_proba`` and ``Personalizer.predict`` within
1e-4, unenrolled and for an enrolled user; if ``predict_proba`` changes, that test fails.

Example:
    >>> import numpy as np, torch
    >>> from adapt.personal import GlobalHead
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 6)).astype("float32")
    >>> head = GlobalHead.fit(X, ["a", "b"] * 20, speakers=np.repeat(["s", "t"], 20), dim=3)
    >>> th = TorchHead(scoring_params(head))
    >>> P = torch.softmax(th(torch.from_numpy(X[:2])), dim=1).detach().numpy()
    >>> bool(np.allclose(P, head.predict_proba(X[:2])[1], atol=1e-5))
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UnknownLabelError

__all__ = ["Scoring", "scoring_params", "TorchHead"]


@dataclass(frozen=True)
class Scoring:
    """Everything a fixed user's scoring needs: ``classes`` [C], ``mu``/``sd`` [D] (the user's
    standardization), ``center`` [D] and ``W`` [D, d] (PCA), ``precision`` [d, d], ``means``
    [K, d] (class-mean rows), ``mix`` [C, K] (logits = row scores @ mix.T / temperature)."""

    classes: tuple[str, ...]
    mu: np.ndarray
    sd: np.ndarray
    center: np.ndarray
    W: np.ndarray
    precision: np.ndarray
    means: np.ndarray
    mix: np.ndarray
    temperature: float = 1.0
    #: ``(centre, slope, class centre [d], (low, high))`` where the path's temperature depends on
    #: the clip's ``log_distance`` (``adapt.personal.calibration``): ``log T(x) = log temperature +
    #: slope * (clip(log_distance(x), low, high) - centre)`` (no range: +-inf); None: constant
    distance_term: Any = None


def scoring_params(head: Any, state: Any = None, tenant: Any = None,
                   labels: Sequence[str] | None = None) -> Scoring:
    """The ``Scoring`` of ``head`` (a ``GlobalHead``) for a user ``state`` (``UserState`` or None:
    unenrolled) in a ``tenant`` (``TenantState`` or None), scoring ``labels`` (default: every
    available class). Mirrors ``GlobalHead.predict_proba`` branch by branch."""
    available = head.available_classes(state, tenant)
    classes = available if labels is None else tuple(labels)
    missing = [c for c in classes if c not in available]
    if missing or not classes:
        raise UnknownLabelError(f"unknown emotion(s) {missing}: this user can be scored on {list(available)}")
    g_index = {c: i for i, c in enumerate(head.classes)}
    t_index = {c: i for i, c in enumerate(tenant.labels)} if tenant is not None else {}
    u_index = {c: i for i, c in enumerate(state.labels)} if state is not None else {}
    labelled = state is not None and float(np.sum(state.counts)) > 0
    prior = tenant.prior() if tenant is not None else None
    if state is None:
        mu, sd = head.normalizer(0, None, None, labelled=False, prior=prior)
    else:
        mu, sd = head.normalizer(state.n, state.mean, state.m2, labelled=labelled, prior=prior)
    sh = head.shrinkage
    tenant_means = {}
    for c, i in t_index.items():
        n_t, s_t = float(tenant.counts[i]), tenant.head_sums[i].astype(np.float32)
        if c in g_index:
            tenant_means[c] = (s_t + sh.tau_tenant * head.means[g_index[c]]) / (n_t + sh.tau_tenant)
        elif n_t > 0:
            tenant_means[c] = s_t / n_t
    C = len(classes)
    if labelled:
        rows = np.zeros((C, head.dim), np.float32)
        for k, c in enumerate(classes):
            parent = head.means[g_index[c]] if c in g_index else tenant_means.get(c)
            i = u_index.get(c)
            if i is not None and state.counts[i] > 0:
                n_c = np.float32(state.counts[i])
                m_c = head.to_head_space((state.sums[i] / n_c)[None], mu, sd)[0]
                rows[k] = m_c if parent is None else (float(n_c) * m_c + sh.tau * parent) / (float(n_c) + sh.tau)
            else:
                rows[k] = parent
        mix = np.eye(C)
    elif tenant_means:
        parts, mix_rows = [], []
        for c in classes:
            mine = []
            if c in tenant_means:
                mine.append((1.0, tenant_means[c]))
            if c in g_index:
                mine.append((sh.global_weight, head.means[g_index[c]]))
            w = np.array([p[0] for p in mine]) / sum(p[0] for p in mine) * (1.0 + sh.global_weight)
            mix_rows.append((len(parts), w))
            parts += [p[1] for p in mine]
        rows = np.stack(parts).astype(np.float32)
        mix = np.zeros((C, len(rows)))
        for k, (start, w) in enumerate(mix_rows):
            mix[k, start:start + len(w)] = w
    else:
        rows = np.stack([head.means[g_index[c]] for c in classes]).astype(np.float32)
        mix = np.eye(C)
    center, W = head.projection
    calibration = getattr(head, "calibration", None)      # heads before calibration have none
    T, term = 1.0, None
    if calibration is not None:
        terms = calibration.terms(labelled)
        feats = None
        if terms:   # the user's own numbers (log_shots, ...) are constants of this scoring
            from ..personal.calibration import calibration_features

            f = calibration_features(head, np.asarray(head.prior_mean, np.float32)[None], state, tenant)
            feats = {k: float(v[0]) for k, v in f.items() if k != "log_distance"}
        T = float(calibration.temperature(labelled, feats))
        if "log_distance" in terms:
            tv = [float(v) for v in terms["log_distance"]]
            rng = (tv[2], tv[3]) if len(tv) == 4 else (-np.inf, np.inf)
            term = (tv[0], tv[1], np.asarray(head.means, np.float32).mean(axis=0), rng)
    return Scoring(classes=tuple(classes), mu=np.asarray(mu, np.float32), sd=np.asarray(sd, np.float32),
                   center=np.asarray(center, np.float32), W=np.asarray(W, np.float32),
                   precision=np.asarray(head.precision, np.float32), means=rows, mix=mix.astype(np.float32),
                   temperature=T, distance_term=term)


class TorchHead(nn.Module):
    """Backbone embeddings ``(B, D)`` -> class logits ``(B, C)`` for one ``Scoring`` (no trainable
    parameters; buffers only, so it moves with ``.to(device)``)."""

    def __init__(self, scoring: Scoring) -> None:
        super().__init__()
        self.classes = scoring.classes
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
        self.register_buffer("mu", t(scoring.mu))
        self.register_buffer("sd", t(scoring.sd))
        self.register_buffer("center", t(scoring.center))
        self.register_buffer("W", t(scoring.W))
        AM = scoring.means.astype(np.float32) @ scoring.precision.astype(np.float32)      # [K, d]
        self.register_buffer("AM", t(AM))
        self.register_buffer("offset", t(0.5 * np.einsum("kd,kd->k", AM, scoring.means)))
        self.register_buffer("mix", t(scoring.mix / scoring.temperature))
        self.distance_term = None
        if scoring.distance_term is not None:
            from ..personal.calibration import T_BOUNDS

            c, sl, cc, (qlo, qhi) = scoring.distance_term
            self.register_buffer("precision", t(scoring.precision))
            self.register_buffer("class_centre", t(cc))
            lo, hi = np.log(np.asarray(T_BOUNDS) / scoring.temperature)
            self.distance_term = (float(c), float(sl), float(lo), float(hi), float(qlo), float(qhi))

    @property
    def input_dim(self) -> int:
        return int(self.W.shape[0])

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mu) / sd``: the user's standardized embedding (what ``W`` projects)."""
        return (x - self.mu) / self.sd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"expected embeddings (batch, {self.input_dim}), got shape {tuple(x.shape)}")
        h = (self.standardize(x) - self.center) @ self.W
        logits = (h @ self.AM.T - self.offset) @ self.mix.T
        if self.distance_term is None:
            return logits
        # the clip's temperature relative to the constant one already folded into ``mix``
        c, sl, lo, hi, qlo, qhi = self.distance_term
        v = h - self.class_centre
        q = ((v @ self.precision) * v).sum(dim=1) / v.shape[1]
        log_q = torch.clamp(torch.log(torch.clamp(q, min=1e-6)), qlo, qhi)   # the fitted range
        rel = torch.clamp(sl * (log_q - c), lo, hi)
        return logits * torch.exp(-rel)[:, None]
