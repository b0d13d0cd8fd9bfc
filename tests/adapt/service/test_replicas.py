"""Two ``ser-adapt serve`` replicas over one PostgreSQL store: concurrent writes through both lose no update,
and both serve the same state (the deployment of docs/scaling.md).

Each replica is a real process (uvicorn, the default backbone, the shipped head) on its own port, both with
``--store`` pointing at one fresh database of the session's throwaway PostgreSQL cluster.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres
httpx = pytest.importorskip("httpx")
N_FEEDBACK = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"replica exited with {proc.returncode}: {proc.stdout.read()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"replica at {url} not healthy after {timeout} s")


@pytest.fixture(scope="module")
def replicas(pg_url, tmp_path_factory):
    """``(urls, key)``: two replicas sharing a fresh database, and an API key of tenant ``acme``."""
    import psycopg

    from adapt.store import open_store

    db = f"replicas_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    store_url = pg_url.rsplit("/", 1)[0] + "/" + db
    store = open_store(store_url)
    key = store.create_key("acme")
    store.close()
    exe = Path(sys.executable).with_name("ser-adapt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SER_ADAPT_CACHE": str(tmp_path_factory.mktemp("cache"))}
    procs, urls = [], []
    try:
        for _ in range(2):
            port = _free_port()
            procs.append(subprocess.Popen([str(exe), "serve", "--store", store_url, "--port", str(port)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs):
            _wait_healthy(url, proc)
        yield urls, key
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def clips(ravdess):
    recs = list(ravdess.filter(speakers=["ravdess_12"]))
    return {e: [r.path.read_bytes() for r in recs if r.emotion == e][:8] for e in ("angry", "sad", "happy")}


def _auth(key):
    return {"Authorization": f"Bearer {key}"}


def test_concurrent_feedback_across_two_replicas_loses_no_update(replicas, clips):
    (a, b), key = replicas
    files = [("files", (f"{e}{i}.flac", c, "audio/flac")) for e, cs in clips.items() for i, c in enumerate(cs[:2])]
    labels = [e for e in clips for _ in range(2)]
    r = httpx.post(f"{a}/v1/users/alice/enroll", files=files, data={"labels": labels}, headers=_auth(key), timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == 1

    jobs = [((a, b)[i % 2], ("sad", "angry")[i % 2], clips[("sad", "angry")[i % 2]][2 + i // 2]) for i in range(N_FEEDBACK)]

    def feedback(job):
        url, label, clip = job
        return httpx.post(f"{url}/v1/users/alice/feedback", files={"file": ("x.flac", clip, "audio/flac")},
                          data={"label": label}, headers=_auth(key), timeout=300)

    with ThreadPoolExecutor(max_workers=6) as pool:   # both replicas write the same profile at once
        responses = list(pool.map(feedback, jobs))
    assert [res.status_code for res in responses] == [200] * N_FEEDBACK, [res.text for res in responses]
    # every write read the previous one's result: the revisions handed out are exactly 2..N+1, no repeats
    assert sorted(res.json()["revision"] for res in responses) == list(range(2, N_FEEDBACK + 2))
    views = [httpx.get(f"{url}/v1/users/alice", headers=_auth(key), timeout=30).json() for url in (a, b)]
    assert views[0] == views[1]
    assert views[0]["revision"] == 1 + N_FEEDBACK
    expected = {"angry": 2 + N_FEEDBACK // 2, "sad": 2 + N_FEEDBACK // 2, "happy": 2}
    assert {k: v for k, v in views[0]["counts"].items() if v} == expected


def test_both_replicas_predict_from_the_same_state(replicas, clips):
    (a, b), key = replicas
    files = [("files", (f"{e}{i}.flac", c, "audio/flac")) for e, cs in clips.items() for i, c in enumerate(cs[:2])]
    r = httpx.post(f"{b}/v1/users/bob/enroll", files=files, data={"labels": [e for e in clips for _ in range(2)]},
                   headers=_auth(key), timeout=120)
    assert r.status_code == 200, r.text
    clip = clips["happy"][5]
    preds = [httpx.post(f"{url}/v1/users/bob/predict", files={"file": ("p.flac", clip, "audio/flac")},
                        headers=_auth(key), timeout=120) for url in (a, b)]
    assert all(p.status_code == 200 for p in preds), [p.text for p in preds]
    assert preds[0].json() == preds[1].json()
    # a write through one replica is what the other one reads next
    r = httpx.delete(f"{a}/v1/users/bob", headers=_auth(key), timeout=30)
    assert r.status_code in (200, 204), r.text
    assert httpx.get(f"{b}/v1/users/bob", headers=_auth(key), timeout=30).status_code == 404
