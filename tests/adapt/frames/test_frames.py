"""Frame features: extraction equals the backbone's frames, the frame cache (hit, miss, corruption),
rate reduction without dropped frames, padding with masks (never silent truncation)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adapt.backbones import get_backbone
from adapt.audio import load_audio
from adapt.errors import EmbeddingShapeError
from adapt.frames import (FrameCache, FrameOptions, as_padded, as_ragged, extract_frames, normalize_utterances,
                          pad_sequences, reduce_rate, select_layers)


@pytest.fixture(scope="module")
def clips(emodb):
    return [emodb.records[i].path for i in (3, 40, 120, 301)]


def test_extracted_frames_are_the_backbones_frames_reduced(tmp_path, clips):
    bb = get_backbone("mfcc")
    got = extract_frames(bb, clips, options=FrameOptions(rate_factor=3), cache=FrameCache(root=tmp_path))
    for path, entry in zip(clips, got):
        w = torch.from_numpy(load_audio(path).samples)
        out = bb(w[None], torch.tensor([len(w)]))
        ref = reduce_rate(out.item(0), 3).numpy()
        assert entry.shape == ref.shape and entry.dtype == np.float16
        np.testing.assert_allclose(entry.astype(np.float32), ref, rtol=2e-3, atol=2e-2)


@pytest.mark.slow   # ~30 s on the shared 2-core machine: Whisper on 6 clips without a cache
def test_whisper_frames_batched_equal_one_by_one(tmp_path, clips):
    batched = extract_frames(None, clips[:3], cache=False, num_threads=1)
    single = [extract_frames(None, [c], cache=False, num_threads=1)[0] for c in clips[:3]]
    for a, b in zip(batched, single):
        assert a.shape == b.shape and a.shape[0] == 5 and a.shape[2] == 384
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=0.05, rtol=1e-2)


def test_cache_hit_miss_and_keys(tmp_path, clips):
    cache = FrameCache(root=tmp_path)
    first = extract_frames("logmel", clips, cache=cache)
    assert (cache.hits, cache.misses) == (len(clips), len(clips))   # put then mapped back: one hit per clip
    again = extract_frames("logmel", clips, cache=cache)
    assert cache.hits == 2 * len(clips) and cache.misses == len(clips)
    assert all(isinstance(a, np.memmap) for a in again)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    # another rate or layer set is another key, not a stale hit
    extract_frames("logmel", clips[:1], cache=cache, options=FrameOptions(rate_factor=2))
    assert cache.misses == len(clips) + 1
    assert cache.size_bytes() == sum(p.stat().st_size for p in tmp_path.rglob("*.npy"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "trailer"])
def test_corrupted_entry_is_a_miss_and_recomputed(tmp_path, clips, damage):
    cache = FrameCache(root=tmp_path)
    ref = extract_frames("mfcc", clips[:2], cache=cache)
    ref = [np.array(r) for r in ref]
    path = sorted(tmp_path.rglob("*.npy"))[0]
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":
        blob[len(blob) // 2] ^= 0xFF
    elif damage == "garbage":
        blob = bytearray(b"not a numpy file at all" * 10)
    else:
        blob = blob[:-40]
    path.write_bytes(bytes(blob))
    before = cache.corrupt
    again = extract_frames("mfcc", clips[:2], cache=cache)
    assert cache.corrupt == before + 1
    for a, b in zip(ref, again):
        np.testing.assert_array_equal(a, b)


def test_unverified_cache_still_catches_truncation(tmp_path, clips):
    cache = FrameCache(root=tmp_path, verify=False)
    extract_frames("mfcc", clips[:1], cache=cache)
    path = next(tmp_path.rglob("*.npy"))
    path.write_bytes(path.read_bytes()[:200])
    assert cache.get(path.stem) is None and cache.corrupt == 1 and not path.exists()


def test_reduce_rate_keeps_every_frame():
    x = torch.arange(10, dtype=torch.float32).reshape(1, 10, 1)
    out = reduce_rate(x, 4)
    assert out.shape == (1, 3, 1)
    assert out[0, :, 0].tolist() == [1.5, 5.5, 8.5]   # the last window holds frames 8 and 9


def test_padding_never_truncates_silently():
    X, lengths = pad_sequences([np.ones((4, 2)), np.ones((2, 2))])
    assert X.shape == (2, 4, 2) and lengths.tolist() == [4, 2] and X[1, 2:].sum() == 0
    with pytest.raises(ValueError, match="refusing to truncate"):
        pad_sequences([np.ones((5, 2))], max_len=3)
    with pytest.raises(EmbeddingShapeError):
        pad_sequences([np.ones((3, 2)), np.ones((3, 4))])


def test_padded_input_validation_and_ragged_view():
    X = np.random.default_rng(0).normal(size=(3, 5, 2)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=bool)
    _, lengths = as_padded(X, mask=mask)
    assert lengths.tolist() == [3, 5, 1]
    flat, lengths2 = as_ragged(X, lengths=lengths)
    assert flat.shape == (9, 2) and lengths2.tolist() == [3, 5, 1]
    with pytest.raises(ValueError, match="run of True"):
        as_padded(X, mask=~mask)
    with pytest.raises(ValueError, match="lengths must be in"):
        as_padded(X, lengths=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="not both"):
        as_padded(X, lengths=lengths, mask=mask)
    X[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        as_padded(X, lengths=lengths)


def test_select_layers():
    entry = np.arange(2 * 3 * 4, dtype=np.float16).reshape(2, 3, 4)
    assert select_layers(entry, "all").shape == (3, 8)
    np.testing.assert_array_equal(select_layers(entry, "all")[:, 4:], entry[1])
    np.testing.assert_allclose(select_layers(entry, "mean"), entry.astype(np.float32).mean(0))
    np.testing.assert_allclose(select_layers(entry, "weighted", [1, 0]), entry[0])
    assert select_layers(entry, -1).shape == (3, 4)
    assert select_layers(entry, "all", dtype=np.float16).dtype == np.float16
    with pytest.raises(ValueError, match="out of range"):
        select_layers(entry, 2)
    with pytest.raises(ValueError):
        FrameOptions(rate_factor=0)
    assert FrameOptions(layers=(0, -1)).reduction(5) == "frames:avg4:0,4"


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_normalize_utterances_uses_each_clips_own_frames(dtype):
    rng = np.random.default_rng(0)
    clips = [(rng.normal(size=(t, 3)) * [1, 5, 0.1] + [10, -2, 0]).astype(dtype) for t in (4, 7, 1)]
    flat, lengths = np.concatenate(clips), np.array([4, 7, 1])
    assert normalize_utterances(flat, lengths, None) is flat
    mean = normalize_utterances(flat, lengths, "mean")
    mv = normalize_utterances(flat, lengths, "meanvar")
    assert mean.dtype == mv.dtype == dtype
    tol = 1e-2 if dtype == np.float16 else 1e-5
    for (s, t), clip in zip([(0, 4), (4, 7), (11, 1)], clips):
        c = clip.astype(np.float64)
        np.testing.assert_allclose(mean[s:s + t], c - c.mean(0), atol=tol)   # its own statistics only
        if t > 1:
            np.testing.assert_allclose(mv[s:s + t].std(0), 1.0, atol=tol)
            np.testing.assert_allclose(mv[s:s + t], (c - c.mean(0)) / c.std(0), atol=tol)
    assert not mv[11:].any()   # one frame: zeros
    alone = normalize_utterances(clips[1], np.array([7]), "meanvar")
    np.testing.assert_array_equal(alone, mv[4:11])
    with pytest.raises(ValueError, match="utterance_norm must be one of"):
        normalize_utterances(flat, lengths, "speaker")
