"""Shared fixtures: the corpora in ../shared/data (or $SER_ADAPT_DATA), temp caches, tiny audio."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from scenarios.corpora import SHARED_CORPORA, available_corpora, data_root

# Never let anything in the test run reach for a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    """Every test that needs the real corpora (the ``data_dir`` fixture, directly or through the
    corpus fixtures) is marked ``corpora``: ``pytest -m "not corpora"`` is the fast unit tier."""
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.corpora)


def _require_data() -> Path:
    root = data_root()
    missing = [c for c in SHARED_CORPORA if c not in available_corpora()]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the corpora: {missing} missing under {root}")
        pytest.skip(f"corpora {missing} not found under {root} (set $SER_ADAPT_DATA)")
    return root


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The data root holding the six shared corpora; skips (fails under CI) when absent."""
    return _require_data()


@pytest.fixture(scope="session")
def ravdess(data_dir):
    from scenarios.corpora import load_corpus

    return load_corpus("ravdess")


@pytest.fixture(scope="session")
def emodb(data_dir):
    from scenarios.corpora import load_corpus

    return load_corpus("emodb")


@pytest.fixture(scope="session")
def emovo(data_dir):
    from scenarios.corpora import load_corpus

    return load_corpus("emovo")


@pytest.fixture(scope="session")
def urdu(data_dir):
    from scenarios.corpora import load_corpus

    return load_corpus("urdu")


@pytest.fixture(scope="session")
def six_table(data_dir):
    """The embedding table of all six shared corpora under the offline default backbone (cached)."""
    from scenarios.tables import FeatureTable

    return FeatureTable.from_corpora(list(SHARED_CORPORA))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def pg_url():
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the profile-store tests (one per session).

    Skips with the reason where no server binaries exist; under CI it fails instead.
    """
    from tests.helpers.personal import start_postgres

    url, stop = start_postgres()
    if url is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI must test PostgreSQL: {stop}")
        pytest.skip(stop)
    yield url
    stop()
