"""The embedding pipeline: cache hit / miss / corruption / concurrent writers, chunking, inputs."""
from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from adapt.audio import load_audio
from adapt.backbones import get_backbone
from adapt.embedding import EmbeddingCache, embed, embed_layers
from adapt.embedding.cache import hash_samples


@pytest.fixture(scope="module")
def clips(emodb):
    return [emodb.records[i].path for i in (1, 50, 99, 150, 260, 333)]


def test_miss_then_hit_gives_identical_vectors(tmp_path, clips):
    cache = EmbeddingCache(root=tmp_path)
    first = embed_layers("logmel", clips, cache=cache, pooling="meanstd")
    assert (cache.hits, cache.misses) == (0, len(clips))
    second = embed_layers("logmel", clips, cache=cache, pooling="meanstd")
    assert cache.hits == len(clips)
    np.testing.assert_array_equal(first, second)
    fresh = embed_layers("logmel", clips, cache=False, pooling="meanstd")
    np.testing.assert_allclose(first, fresh, rtol=1e-5, atol=1e-5)
    # a different pooling is a different key, not a stale hit
    embed_layers("logmel", clips[:1], cache=cache, pooling="mean")
    assert cache.misses == len(clips) + 1


def test_corrupted_entry_is_detected_and_recomputed(tmp_path, clips):
    cache = EmbeddingCache(root=tmp_path)
    ref = embed_layers("mfcc", clips[:2], cache=cache)
    files = sorted(tmp_path.rglob("*.emb"))
    assert len(files) == 2
    blob = bytearray(files[0].read_bytes())
    blob[-3] ^= 0xFF  # flip a payload byte: checksum fails
    files[0].write_bytes(bytes(blob))
    files[1].write_bytes(files[1].read_bytes()[:20])  # truncated
    cache2 = EmbeddingCache(root=tmp_path)
    again = embed_layers("mfcc", clips[:2], cache=cache2)
    assert cache2.corrupt == 2 and cache2.hits == 0
    np.testing.assert_allclose(again, ref, rtol=1e-5, atol=1e-5)
    cache3 = EmbeddingCache(root=tmp_path)
    embed_layers("mfcc", clips[:2], cache=cache3)
    assert (cache3.hits, cache3.corrupt) == (2, 0)  # rewritten whole


def _writer(root: str, seed: int, rounds: int) -> None:
    cache = EmbeddingCache(root=root)
    value = np.full((5, 64), float(seed), dtype=np.float32)
    for _ in range(rounds):
        cache.put("ab" + "0" * 62, value)


def test_two_processes_writing_the_same_entry(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s, 300)) for s in (1, 2)]
    for p in procs:
        p.start()
    reader = EmbeddingCache(root=tmp_path)
    seen = set()
    while any(p.is_alive() for p in procs):
        got = reader.get("ab" + "0" * 62)
        if got is not None:
            assert got.shape == (5, 64) and len(np.unique(got)) == 1  # never a torn mix
            seen.add(float(got[0, 0]))
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reader.corrupt == 0
    assert float(reader.get("ab" + "0" * 62)[0, 0]) in (1.0, 2.0)
    assert not list(tmp_path.rglob("*.tmp"))  # no temp files left behind


_EMBED_SCRIPT = """
import sys
from adapt.embedding import EmbeddingCache, embed_layers
embed_layers("logmel", sys.argv[2:], cache=EmbeddingCache(root=sys.argv[1]), num_threads=1)
"""


@pytest.mark.slow  # two fresh interpreters importing torch; the put()-level race test above is fast
def test_two_processes_embedding_the_same_clips(tmp_path, clips):
    # fresh interpreters (not fork: forking a process whose OpenMP pool is live can deadlock)
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    cmd = [sys.executable, "-c", _EMBED_SCRIPT, str(tmp_path), *map(str, clips)]
    procs = [subprocess.Popen(cmd, cwd=root, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    cache = EmbeddingCache(root=tmp_path)
    out = embed_layers("logmel", clips, cache=cache)
    assert cache.hits == len(clips) and cache.corrupt == 0
    np.testing.assert_allclose(out, embed_layers("logmel", clips, cache=False), rtol=1e-5, atol=1e-5)


def test_inputs_paths_arrays_waveforms_agree(clips):
    w = load_audio(clips[0])
    a = embed("logmel", [clips[0]], cache=False, layers=0)
    b = embed("logmel", [w.samples], sr=16000, cache=False, layers=0)
    c = embed("logmel", [w], cache=False, layers=0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    with pytest.raises(ValueError, match="sr"):
        embed("logmel", [w.samples], cache=False)


def test_bucketed_batches_equal_one_by_one(clips):
    batched = embed_layers("logmel", clips, cache=False, batch_size=4)
    single = embed_layers("logmel", clips, cache=False, batch_size=1)
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-5)


def test_long_audio_is_chunked_with_overlap(ravdess):
    wave = np.concatenate([load_audio(ravdess.records[i].path).samples for i in range(3)])  # ~10 s
    whole = embed_layers("logmel", [wave], sr=16000, cache=False, chunk_seconds=None)
    chunked = embed_layers("logmel", [wave], sr=16000, cache=False, chunk_seconds=3.0, overlap_seconds=1.0)
    # the stitched frames cover the clip once: the mean is close to the unchunked one
    np.testing.assert_allclose(chunked, whole, rtol=0.02, atol=0.02)
    with pytest.raises(ValueError, match="overlap"):
        embed_layers("logmel", [wave], sr=16000, cache=False, chunk_seconds=2.0, overlap_seconds=1.5)


def test_default_backbone_chunks_long_clips(ravdess):
    bb = get_backbone()
    wave = np.concatenate([load_audio(r.path).samples for r in ravdess.records[:2]])  # ~7 s
    whole = embed_layers(bb, [wave], sr=16000, cache=False)
    chunked = embed_layers(bb, [wave], sr=16000, cache=False, chunk_seconds=4.0, overlap_seconds=1.0)
    assert chunked.shape == (1, 5, 384) and np.isfinite(chunked).all()
    other = embed_layers(bb, [ravdess.records[500].path], cache=False)
    # context differs near the cut and positions restart in each window (Whisper is sensitive to
    # both: see docs/backbones.md), yet per layer the stitched vector stays closer to the unchunked
    # one than another clip's vector is
    d_self = np.linalg.norm(chunked - whole, axis=-1)
    d_other = np.linalg.norm(other - whole, axis=-1)
    assert (d_self < d_other).all(), (d_self, d_other)


@pytest.mark.slow
def test_default_backbone_chunks_clips_over_30_s(ravdess):
    bb = get_backbone()
    wave = np.concatenate([load_audio(r.path).samples for r in ravdess.records[:10]])  # ~37 s
    assert len(wave) > bb.spec.max_samples
    out = embed_layers(bb, [wave], sr=16000, cache=False)
    assert out.shape == (1, 5, 384) and np.isfinite(out).all()


def test_sample_hash_depends_on_content_and_rate():
    x = np.zeros(100, np.float32)
    assert hash_samples(x, 16000) != hash_samples(x, 8000)
    y = x.copy()
    y[3] = 1e-7
    assert hash_samples(x, 16000) != hash_samples(y, 16000)


def test_package_level_names(clips):
    import adapt

    X = adapt.embed("logmel", clips[:2], cache=False, layers=0)
    assert X.shape == (2, 80)
    assert adapt.get_backbone("logmel") is adapt.get_backbone("logmel")  # loaded once per process
    assert callable(adapt.embedding.embed_layers)
