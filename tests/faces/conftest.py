"""Fixtures of the CLI tests: a real (small) model the CLI can load by name and path."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def logmel_head(tmp_path_factory, ravdess):
    """The path of a ``GlobalHead`` fitted on RAVDESS speakers 01-03 with the ``logmel`` backbone,
    so CLI commands that embed audio run with ``--backbone logmel --head <path>`` (real audio,
    seconds instead of the default encoder's minutes)."""
    import adapt
    from adapt.personal import GlobalHead

    sub = ravdess.filter(speakers=["ravdess_01", "ravdess_02", "ravdess_03"])
    X = adapt.embed(adapt.get_backbone("logmel"), [r.path for r in sub])
    head = GlobalHead.fit(X, np.array(sub.labels()), speakers=np.array([r.speaker for r in sub]), dim=32,
                          info={"backbone": "logmel"})
    path = tmp_path_factory.mktemp("head") / "logmel_head.npz"
    head.save(path)
    return str(path)


@pytest.fixture(scope="session")
def actor_clips(ravdess):
    """``{speaker: {emotion: [path, path]}}`` for two RAVDESS speakers the head never saw."""
    out = {}
    for spk in ("ravdess_10", "ravdess_11"):
        recs = list(ravdess.filter(speakers=[spk]))
        out[spk] = {e: [str(r.path) for r in recs if r.emotion == e][:2] for e in ("angry", "sad", "happy", "neutral")}
    return out
