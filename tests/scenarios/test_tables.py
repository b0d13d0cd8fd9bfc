"""scenarios.tables: the FeatureTable contract and the consolidated per-corpus table."""
from __future__ import annotations

import numpy as np
import pytest

from adapt.embedding import embed
from scenarios.corpora import load_corpus
from scenarios.tables import FeatureTable, corpus_features, corpus_layer_features


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_ADAPT_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def small_emodb(emodb):
    # two speakers, every 4th clip (all seven emotions still present)
    two = emodb.filter(speakers=list(emodb.speakers[:2]))
    return two.subset(range(0, len(two), 4))


@pytest.fixture(scope="module")
def small_urdu(urdu):
    return urdu.subset(range(0, 400, 25))


def test_featureset_contract_on_real_clips(tmp_cache, small_emodb):
    fs = corpus_features(small_emodb, "logmel", layers=0, pooling="meanstd")
    n = len(small_emodb)
    assert len(fs) == n and fs.X.shape == (n, 160) and fs.X.dtype == np.float32
    for name in ("y", "speakers", "text_ids", "languages", "corpora", "clip_ids"):
        assert len(getattr(fs, name)) == n
    assert set(fs.y) <= {"neutral", "boredom", "happy", "sad", "angry", "fear", "disgust"}
    assert set(fs.languages) == {"de"} and set(fs.corpora) == {"emodb"}
    assert fs.text_ids.dtype == object and all(t is not None for t in fs.text_ids)
    assert list(fs.clip_ids) == [r.clip_id for r in small_emodb]
    # rows are the clips' own embeddings, in record order
    np.testing.assert_allclose(fs.X[:3], embed("logmel", small_emodb.paths()[:3], layers=0, pooling="meanstd", cache=False),
                               rtol=1e-5, atol=1e-5)


def test_subset_and_concat(tmp_cache, small_emodb, small_urdu):
    a = corpus_features(small_emodb, "mfcc", layers=0)
    b = corpus_features(small_urdu, "mfcc", layers=0)
    assert all(t is None for t in b.text_ids)  # URDU has no fixed sentences
    mask = a.speakers == a.speakers[0]
    sub = a.subset(mask)
    assert len(sub) == int(mask.sum()) and set(sub.speakers) == {a.speakers[0]}
    np.testing.assert_array_equal(a.subset([2, 0]).X, a.X[[2, 0]])
    both = FeatureTable.concat([a, b])
    assert len(both) == len(a) + len(b) and set(both.corpora) == {"emodb", "urdu"}
    with pytest.raises(ValueError, match="mask"):
        a.subset(np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="dims"):
        FeatureTable.concat([a, corpus_features(small_urdu, "logmel", layers=0)])
    with pytest.raises(ValueError, match="rows"):
        FeatureTable(X=a.X, y=a.y[:-1], speakers=a.speakers, text_ids=a.text_ids, languages=a.languages,
                   corpora=a.corpora, clip_ids=a.clip_ids)


@pytest.fixture
def mini_corpus(tmp_path, urdu):
    """A 12-clip corpus folder: metadata.csv plus symlinks to real URDU files (nothing copied)."""
    import csv

    folder = tmp_path / "mini"
    (folder / "audio").mkdir(parents=True)
    with open(folder / "metadata.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "speaker", "emotion", "language", "gender", "duration_s"])
        for r in urdu.records[::34][:12]:
            (folder / "audio" / r.path.name).symlink_to(r.path)
            w.writerow([f"audio/{r.path.name}", r.speaker, r.emotion, r.language, r.gender, r.duration_s])
    return load_corpus(folder)


def test_full_corpus_table_is_consolidated_and_serves_subsets(tmp_cache, mini_corpus):
    per_layer = corpus_layer_features(mini_corpus, "mfcc")
    assert per_layer.shape == (12, 1, 40)
    tables = list((tmp_cache / "features").glob("mini-mfcc-*.npz"))
    assert len(tables) == 1
    # a subset now comes from the table, in the subset's order
    np.testing.assert_array_equal(corpus_layer_features(mini_corpus.subset([5, 1]), "mfcc"), per_layer[[5, 1]])
    # a damaged table is rebuilt, not trusted
    tables[0].write_bytes(b"not an npz")
    np.testing.assert_allclose(corpus_layer_features(mini_corpus, "mfcc"), per_layer, rtol=1e-6)
    fs = corpus_features(mini_corpus, "mfcc", layers=0)
    assert len(fs) == 12 and set(fs.corpora) == {"mini"}


def test_default_backbone_features_for_a_few_clips(tmp_cache, small_urdu):
    fs = corpus_features(small_urdu.subset(range(4)))
    assert fs.X.shape == (4, 5 * 384) and fs.backbone == "whisper-tiny.en" and fs.layers == "all"
    assert np.isfinite(fs.X).all()
