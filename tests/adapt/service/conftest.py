"""Fixtures of the HTTP service tests: real RAVDESS clips and an app over a fresh SQLite store."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def clips(ravdess):
    recs = list(ravdess.filter(speakers=["ravdess_12"]))
    pick = {e: [r for r in recs if r.emotion == e] for e in ("angry", "sad", "happy")}
    return {e: [r.path.read_bytes() for r in rs[:3]] for e, rs in pick.items()}


@pytest.fixture()
def env(tmp_path):
    """``(client, keys, personalizer)``: keys ``a`` and ``b`` of two tenants, ``ro`` read-only of ``a``."""
    from fastapi.testclient import TestClient

    from adapt.personal import Personalizer
    from adapt.service import ServiceLimits, create_app
    from tests.helpers.personal import small_model

    emb, head = small_model()
    p = Personalizer(emb, head, tmp_path / "svc.db")
    keys = {"a": p.store.create_key("tenant-a"), "b": p.store.create_key("tenant-b"),
            "ro": p.store.create_key("tenant-a", read_only=True)}
    app = create_app(p, limits=ServiceLimits(max_request_bytes=2_000_000, max_file_bytes=500_000, max_files=8))
    return TestClient(app), keys, p
