"""``embed_layers(..., executor="ray")``: the local path's numbers on real clips, in input order, through the
same cache without recomputing hits, a lost worker retried, the CLI flag, and the install hint without Ray.

One local Ray instance (2 CPUs, loopback, no dashboard) per module; each ``embed_layers`` call starts its own
actors, so the tests use few calls and small blocks.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from adapt.backbones import Backbone, get_backbone
from adapt.embedding import EmbeddingCache, EmbedOptions, embed, embed_layers
from adapt.embedding.distributed import RAY_INSTALL_HINT
from tests.helpers.ray_cluster import local_ray

ray_instance = pytest.fixture(scope="module")(local_ray)


@pytest.fixture(scope="module")
def clips(emodb, emovo):
    # real clips of two corpora with different lengths, deliberately not sorted by length
    return [emodb.records[i].path for i in (3, 77, 150, 222, 301, 420)] + [emovo.records[i].path for i in (5, 99, 260)]


def test_default_backbone_on_ray_equals_the_local_path_bitwise(ray_instance, clips, tmp_path):
    bb = get_backbone()
    local = embed_layers(bb, clips, cache=False, num_threads=1, block=4)
    cache = EmbeddingCache(root=tmp_path)
    # by name: each actor loads Whisper tiny.en itself; 9 clips in blocks of 4 -> 3 tasks on 2 actors
    distributed = embed_layers(None, clips, cache=cache, executor="ray", workers=2, num_threads=1, block=4)
    assert distributed.shape == local.shape == (len(clips), bb.spec.num_layers, bb.spec.dim)
    np.testing.assert_array_equal(distributed, local)  # same batches, same threads: the same bits
    assert (cache.hits, cache.misses) == (0, len(clips))
    assert len(list(tmp_path.rglob("*.emb"))) == len(clips)
    # the entries the workers wrote are the local path's cache: a local run is all hits, same numbers
    again = EmbeddingCache(root=tmp_path)
    np.testing.assert_array_equal(embed_layers(bb, clips, cache=again, block=4), local)
    assert (again.hits, again.misses) == (len(clips), 0)
    # and embed() combines the layers of the distributed result like the local one
    np.testing.assert_array_equal(embed(None, clips[:2], cache=again, executor="ray", workers=1),
                                  embed(bb, clips[:2], cache=again))


def test_cached_clips_are_not_recomputed_and_order_is_kept(ray_instance, clips, tmp_path):
    shuffled = [clips[i] for i in (8, 0, 5, 2, 7, 1, 4, 6, 3)]
    first_half = shuffled[::2]

    def half_cached(root):  # 5 of the 9 clips cached beforehand, by the local path
        cache = EmbeddingCache(root=root)
        embed_layers("logmel", first_half, cache=cache, num_threads=1)
        cache.hits = cache.misses = 0
        return cache

    # the reference is the local path in the same cache state (hits change which clips share a padded
    # batch, and the log-mel STFT's last bits depend on the batch and the thread count)
    ref = embed_layers("logmel", shuffled, cache=half_cached(tmp_path / "local"), block=3, num_threads=1)
    cache = half_cached(tmp_path / "ray")
    got = embed_layers("logmel", shuffled, cache=cache, executor="ray", block=3)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_allclose(got, embed_layers("logmel", shuffled, cache=False), rtol=1e-5, atol=1e-5)
    assert (cache.hits, cache.misses) == (len(first_half), len(shuffled) - len(first_half))
    tmp_path = tmp_path / "ray"
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.emb")}
    got = embed_layers("logmel", shuffled, cache=cache, executor="ray", block=3)
    np.testing.assert_array_equal(got, ref)
    assert cache.hits == len(first_half) + len(shuffled)  # the second Ray run: every clip a hit
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.emb")} == before  # nothing rewritten


class CrashOnce(Backbone):
    """The log-mel backbone, except that the first forward call anywhere kills its process."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.inner = get_backbone("logmel", reuse=False)
        self.spec = self.inner.spec
        self.marker = marker

    def forward(self, wavs, lengths=None):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)  # what a lost worker looks like to Ray: the process is gone mid-task
        return self.inner(wavs, lengths)


def test_a_lost_worker_is_restarted_and_its_block_rerun(ray_instance, clips, tmp_path):
    ray_instance.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/
    marker = tmp_path / "crashed"
    ref = embed_layers("logmel", clips, cache=False, block=3, num_threads=1)
    got = embed_layers(CrashOnce(str(marker)), clips, cache=False, executor="ray", workers=2, block=3)
    assert marker.exists(), "the worker never crashed: this test tests nothing"
    np.testing.assert_array_equal(got, ref)
    with pytest.raises(Exception, match="(?i)actor|died|worker"):  # no retries left: the loss is an error
        embed_layers(CrashOnce(str(tmp_path / "again")), clips[:2], cache=False, executor="ray", workers=1,
                     max_retries=0)


def test_progress_bar_counts_clips(ray_instance, clips, capsys):
    embed_layers("logmel", clips, cache=False, executor="ray", block=4, progress=True)
    err = capsys.readouterr().err
    assert "embed [logmel] on" in err and f"{len(clips)}/{len(clips)}" in err


def test_cli_embed_with_ray_writes_the_local_matrix(ray_instance, clips, tmp_path, monkeypatch):
    from adapt.cli import app

    monkeypatch.setenv("SER_ADAPT_CACHE", str(tmp_path / "cache"))
    files = [str(c) for c in clips[:4]]
    out = tmp_path / "x.npz"
    res = CliRunner().invoke(app, ["embed", *files, "-b", "mfcc", "--ray", "--workers", "2", "-o", str(out),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    z = np.load(out)
    np.testing.assert_array_equal(z["X"], embed("mfcc", files, cache=False, num_threads=1))
    assert list(z["paths"]) == files and str(z["backbone"]) == "mfcc"
    res = CliRunner().invoke(app, ["embed", *files, "-b", "mfcc", "--workers", "2", "-o", str(out)])
    assert res.exit_code == 2 and "--ray" in res.output


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        EmbedOptions(executor="dask")
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        EmbedOptions(executor="ray", workers=0)
    with pytest.raises(ValueError, match="max_retries"):
        EmbedOptions(max_retries=-1)
    with pytest.raises(TypeError, match="backbone must be a Backbone"):
        embed_layers(3.5, [np.zeros(16000, np.float32)], sr=16000, executor="ray")


def test_without_ray_the_executor_and_the_flags_say_what_to_install(monkeypatch, tmp_path, emodb):
    from adapt.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail, as when it is not installed
    with pytest.raises(ImportError, match=r"pip install 'ser-adapt\[ray\]'"):
        embed_layers("logmel", [emodb.records[0].path], executor="ray", cache=False)
    res = CliRunner().invoke(app, ["embed", str(emodb.records[0].path), "--ray", "-o", str(tmp_path / "x.npy")])
    assert res.exit_code == 2 and RAY_INSTALL_HINT in res.output
