"""Frame tables of the corpora and the sequence benchmark's protocols (speaker folds, LOCO)."""
from __future__ import annotations

import numpy as np
import pytest

from adapt.heads import LinearHead
from adapt.heads.sequence import SequenceHead
from scenarios.sequence import FrameTable, Method, corpus_frames, evaluate, loco_folds, restricted_predict, speaker_folds
from tests.adapt.frames.tiny import tiny_records


@pytest.fixture(scope="module")
def table(data_dir):
    from scenarios.corpora import Corpus

    recs = tiny_records(per_emotion=4)
    parts = []
    for name in ("emodb", "emovo"):
        mine = tuple(r for r in recs if r.corpus == name)
        parts.append(corpus_frames(Corpus(name, mine[0].path.parent, mine), num_threads=1))
    return FrameTable.concat(parts)


def test_frame_table_rows_follow_the_records(table):
    assert len(table) == len(table.meta) == 32
    assert table.frames[0].shape[0] == 5 and table.frames[0].shape[2] == 384
    seqs = table.sequences("all")
    assert seqs[0].shape == (table.frames[0].shape[1], 1920) and seqs[0].dtype == np.float16
    pooled = table.sequences("mean", pool=4, dtype=np.float32)
    assert pooled[0].shape == (-(-table.frames[0].shape[1] // 4), 384)
    np.testing.assert_allclose(pooled[0][0], table.frames[0][:, :4].astype(np.float32).mean((0, 1)), atol=1e-3)
    sub = table.subset(table.meta.corpora == "emovo")
    assert set(sub.meta.corpora.tolist()) == {"emovo"} and len(sub) == 16
    assert 20 < table.seconds() < 200


def test_folds_are_speaker_and_corpus_disjoint(table):
    meta = table.meta
    for f in speaker_folds(meta, "emodb", n_splits=2):
        assert not set(meta.speakers[f.train]) & set(meta.speakers[f.test])
        assert set(meta.corpora[f.train]) == {"emodb"}
    folds = loco_folds(meta, ["emodb", "emovo"])
    assert [f.name for f in folds] == ["loco/emodb", "loco/emovo"]
    assert all(f.restrict and set(meta.corpora[f.test]).isdisjoint(meta.corpora[f.train]) for f in folds)


def test_evaluate_times_and_scores_a_head(table):
    meta = table.meta
    views = {"frames": table.sequences("all"), "pooled": np.stack([s.astype(np.float32).mean(0)
                                                                   for s in table.sequences("all")])}
    fold = loco_folds(meta, ["emodb", "emovo"])[1]
    r = evaluate(Method("attentive", lambda: SequenceHead(arch="attentive", hidden=16, max_iter=3, num_layers=5),
                        "frames", aux=()), fold, meta, views)
    assert 0.0 <= r.ua <= 1.0 and r.train_s > 0 and r.infer_ms_per_clip > 0 and r.n_params > 1000
    head = LinearHead().fit(views["pooled"], meta.y)
    pred = restricted_predict(head, views["pooled"], ["angry", "sad"])
    assert set(pred.tolist()) <= {"angry", "sad"}


def test_a_sequence_head_feeds_the_few_shot_protocol_as_a_feature_extractor(table):
    """Issue 14, part 5: a sequence head trained on one corpus embeds another corpus's clips, and
    the personalization protocol runs on those pooled features like on any embedding table."""
    import dataclasses

    from scenarios.fewshot import personalization

    meta = table.meta
    frames = table.sequences("all")
    src = np.flatnonzero(meta.corpora == "emodb")
    head = SequenceHead(arch="attentive", hidden=16, max_iter=3, num_layers=5).fit([frames[i] for i in src],
                                                                                   meta.y[src])
    tgt = np.flatnonzero(meta.corpora == "emovo")
    Z = head.embed([frames[i] for i in tgt])
    assert Z.shape == (len(tgt), head.module_.rep_dim) and np.isfinite(Z).all()
    fs = dataclasses.replace(meta.subset(tgt), X=Z.astype(np.float32))
    rows = personalization(fs, recipes=["prototype"], shots=[1], modes=["overlap"], n_boot=50)
    assert {r.method for r in rows} >= {"si", "prototype"}
    assert all(0.0 <= r.ua <= 1.0 and r.n_targets > 0 for r in rows)
