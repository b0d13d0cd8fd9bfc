"""ONNX export of the default encoder and the global head: parity with torch on real clips, distinct
cache fingerprints, metadata, and clear errors for tampered, mismatched or foreign models.

The encoder is exported once per test session through ``get_backbone(..., runtime="onnx")`` (into
``<cache>/onnx/``, reused by later runs); the tamper tests edit copies in a temp folder.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

import adapt  # noqa: E402
from adapt.audio import load_audio  # noqa: E402
from adapt.backbones import get_backbone, pad_batch  # noqa: E402
from adapt.embedding import EmbeddingCache  # noqa: E402
from adapt.errors import BackboneNotAvailableError, EmbeddingShapeError, InvalidStateError  # noqa: E402
from adapt.onnx import OnnxBackbone, OnnxHead, export_head  # noqa: E402
from adapt.onnx.metadata import get_metadata, set_metadata  # noqa: E402
from adapt.personal import GlobalHead  # noqa: E402
from adapt.personal.personalizer import default_head_path  # noqa: E402


@pytest.fixture(scope="module")
def torch_bb():
    torch.set_num_threads(2)
    return get_backbone()


@pytest.fixture(scope="module")
def onnx_bb(torch_bb):
    return get_backbone("whisper-tiny.en", runtime="onnx")


@pytest.fixture(scope="module")
def int8_bb(onnx_bb):
    return get_backbone("whisper-tiny.en", runtime="onnx-int8")


@pytest.fixture(scope="module")
def head():
    return GlobalHead.load(default_head_path())


@pytest.fixture(scope="module")
def head_onnx(tmp_path_factory, head, torch_bb):
    return export_head(tmp_path_factory.mktemp("head") / "head.onnx", head, encoder_fingerprint=torch_bb.spec.fingerprint)


@pytest.fixture(scope="module")
def waves(ravdess, emodb, emovo, urdu):
    """Twelve real clips: three per corpus, different speakers and emotions (1.5-11 s)."""
    out = []
    for corpus in (ravdess, emodb, emovo, urdu):
        recs = corpus.records
        out += [load_audio(recs[i].path).samples for i in (0, len(recs) // 2, len(recs) - 1)]
    return out


@pytest.fixture(scope="module")
def torch_X(torch_bb, waves):
    return adapt.embed(torch_bb, waves, sr=16_000, cache=False)


@pytest.fixture(scope="module")
def onnx_X(onnx_bb, waves):
    return adapt.embed(onnx_bb, waves, sr=16_000, cache=False)


def test_onnx_embeddings_match_torch_on_real_clips(torch_X, onnx_X):
    assert onnx_X.shape == torch_X.shape == (12, 1920)
    diff = float(np.abs(onnx_X - torch_X).max())
    assert diff < 1e-4, f"max abs difference {diff:.2e} (values up to {float(np.abs(torch_X).max()):.1f})"


def test_global_head_predicts_the_same_on_onnx_embeddings(torch_X, onnx_X, head, head_onnx):
    classes, P_torch = head.predict_proba(torch_X)
    labels, P_onnx = OnnxHead(head_onnx).predict_proba(onnx_X)
    assert labels == classes
    assert (P_onnx.argmax(1) == P_torch.argmax(1)).all()
    np.testing.assert_allclose(P_onnx, P_torch, atol=1e-4)
    # the ONNX head alone on torch embeddings is the same model too
    np.testing.assert_allclose(OnnxHead(head_onnx).predict_proba(torch_X)[1], P_torch, atol=1e-4)


def test_head_takes_a_users_normalization(torch_X, head, head_onnx):
    from adapt.personal.user_state import UserState

    st = UserState.empty(head.input_dim).observe(torch_X[:3].astype(np.float64))   # unlabelled clips
    mu, sd = head.normalizer(st.n, st.mean, st.m2, labelled=False)
    classes, P = head.predict_proba(torch_X, state=st)
    _, Q = OnnxHead(head_onnx).predict_proba(torch_X, center=mu, scale=sd)
    np.testing.assert_allclose(Q, P, atol=1e-4)


def test_graph_pooled_output_is_the_embedding_the_head_takes(onnx_bb, waves, onnx_X):
    np.testing.assert_allclose(onnx_bb.embedding(waves[1]), onnx_X[1], atol=1e-5)


def test_padded_batch_equals_one_by_one(onnx_bb, waves):
    batch = [waves[0], waves[4][:20000], waves[7][:33333]]
    x, lengths = pad_batch(batch)
    out = onnx_bb(x, lengths)
    for i, w in enumerate(batch):
        single = onnx_bb(torch.from_numpy(w)[None])
        assert int(out.lengths[i]) == int(single.lengths[0]) == (len(w) // 160 // 2)
        torch.testing.assert_close(out.item(i), single.item(0))


def test_fingerprints_differ_so_the_cache_never_mixes_runtimes(torch_bb, onnx_bb, int8_bb, waves, tmp_path):
    fps = {torch_bb.spec.fingerprint, onnx_bb.spec.fingerprint, int8_bb.spec.fingerprint}
    assert len(fps) == 3
    assert (onnx_bb.spec.name, int8_bb.spec.name) == ("whisper-tiny.en@onnx", "whisper-tiny.en@onnx-int8")
    cache = EmbeddingCache(root=tmp_path)
    X_torch = adapt.embed(torch_bb, waves[:2], sr=16_000, cache=cache)
    entries = sum(p.is_file() for p in tmp_path.rglob("*"))
    X_int8 = adapt.embed(int8_bb, waves[:2], sr=16_000, cache=cache)
    assert sum(p.is_file() for p in tmp_path.rglob("*")) == 2 * entries > 0   # two entries per clip
    assert not np.array_equal(X_torch, X_int8)   # int8 was computed, not served from the torch entries
    np.testing.assert_array_equal(adapt.embed(int8_bb, waves[:2], sr=16_000, cache=cache), X_int8)


def test_int8_stays_close_to_fp32(torch_X, int8_bb, waves, head):
    X8 = adapt.embed(int8_bb, waves, sr=16_000, cache=False)
    cos = (X8 * torch_X).sum(1) / np.linalg.norm(X8, axis=1) / np.linalg.norm(torch_X, axis=1)
    assert cos.min() > 0.99, cos
    assert int8_bb.path.stat().st_size < 0.75 * get_backbone("whisper-tiny.en@onnx").path.stat().st_size
    assert int8_bb.metadata["precision"] == "int8" and "blocks 1..1" in json.loads(int8_bb.metadata["quantization"])["fp32"]


def test_metadata_carries_labels_preprocessing_layers_pooling_and_provenance(onnx_bb, torch_bb, head_onnx, head):
    enc = get_metadata(onnx.load(str(onnx_bb.path)))
    assert enc["source_fingerprint"] == torch_bb.spec.fingerprint and enc["precision"] == "fp32"
    assert enc["ser_adapt.version"] == adapt.__version__ and enc["sample_rate"] == "16000"
    pre = json.loads(enc["preprocessing"])
    assert (pre["n_fft"], pre["hop_length"], pre["n_mels"], pre["kind"]) == (400, 160, 80, "whisper-log-mel")
    assert json.loads(enc["layers"])["num_layers"] == 5 and json.loads(enc["pooling"])["time"] == "mean"
    meta = OnnxHead(head_onnx).metadata
    assert json.loads(meta["labels"]) == list(head.classes)
    assert float(meta["temperature"]) == pytest.approx(head.calibration.temperature(False))
    assert meta["source_fingerprint"] == torch_bb.spec.fingerprint


def _edited(src, dst, edit):
    model = onnx.load(str(src))
    edit(model)
    onnx.save_model(model, str(dst))
    return dst


def test_tampered_or_mismatched_models_are_refused(onnx_bb, head_onnx, tmp_path):
    src = onnx_bb.path

    def bump_weight(m):
        t = max(m.graph.initializer, key=lambda i: len(i.raw_data))
        arr = onnx.numpy_helper.to_array(t).copy()
        arr.flat[0] += 1.0
        t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))

    with pytest.raises(InvalidStateError, match="modified after export"):
        OnnxBackbone(_edited(src, tmp_path / "w.onnx", bump_weight))

    def drop_key(m):
        meta = {k: v for k, v in get_metadata(m).items() if k not in ("preprocessing", "graph_sha256")}
        set_metadata(m, meta)

    with pytest.raises(InvalidStateError, match="lacks \\['preprocessing'\\]"):
        OnnxBackbone(_edited(src, tmp_path / "k.onnx", drop_key))

    def wrong_layers(m):
        meta = get_metadata(m)
        meta.pop("graph_sha256")
        meta["layers"] = json.dumps({"num_layers": 4, "dim": 384})
        set_metadata(m, meta)

    with pytest.raises(InvalidStateError, match="4 layers x 384"):
        OnnxBackbone(_edited(src, tmp_path / "l.onnx", wrong_layers))

    def newer_format(m):
        meta = get_metadata(m)
        meta.pop("graph_sha256")
        meta["ser_adapt.format_version"] = "99"
        set_metadata(m, meta)

    with pytest.raises(InvalidStateError, match="format version '99'"):
        OnnxBackbone(_edited(src, tmp_path / "v.onnx", newer_format))
    with pytest.raises(InvalidStateError, match="not a ser-adapt encoder model"):
        OnnxBackbone(head_onnx)
    with pytest.raises(InvalidStateError, match="not a ser-adapt head model"):
        OnnxHead(src)
    with pytest.raises(InvalidStateError, match="exported from backbone fingerprint"):
        OnnxBackbone(src, expected_source="0" * 16)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx at all" * 10)
    with pytest.raises(InvalidStateError, match="not a readable ONNX model"):
        OnnxBackbone(garbage)
    with pytest.raises(FileNotFoundError, match="ser-adapt export onnx"):
        OnnxBackbone(tmp_path / "missing")


def test_head_metadata_must_match_its_graph(head_onnx, tmp_path):
    def fewer_labels(m):
        meta = get_metadata(m)
        meta.pop("graph_sha256")
        meta["labels"] = json.dumps(json.loads(meta["labels"])[:-1])
        set_metadata(m, meta)

    with pytest.raises(InvalidStateError, match="labels in the metadata"):
        OnnxHead(_edited(head_onnx, tmp_path / "h.onnx", fewer_labels))
    with pytest.raises(EmbeddingShapeError, match="1920"):
        OnnxHead(head_onnx).predict_proba(np.zeros((2, 10), np.float32))


def test_names_runtimes_and_errors(onnx_bb, int8_bb):
    assert get_backbone("whisper-tiny.en@onnx") is onnx_bb
    assert get_backbone("default@onnx-int8") is int8_bb
    loaded = get_backbone(f"onnx:{onnx_bb.path.parent}", reuse=False)
    assert loaded.spec == onnx_bb.spec
    with pytest.raises(ValueError, match="unknown runtime 'tflite'"):
        get_backbone("whisper-tiny.en", runtime="tflite")
    with pytest.raises(KeyError, match="exports the Whisper backbones"):
        get_backbone("logmel", runtime="onnx")
    with pytest.raises(ValueError, match="names runtime 'onnx'"):
        get_backbone("whisper-tiny.en@onnx", runtime="onnx-int8")
    with pytest.raises(ValueError, match="at least 320 samples"):
        onnx_bb(torch.zeros(1, 200))
    with pytest.raises(ValueError, match="chunks longer clips"):
        onnx_bb(torch.zeros(1, onnx_bb.spec.max_samples + 160))


def test_the_personalizer_runs_on_the_onnx_backbone(onnx_bb, head, tmp_path, waves, torch_X):
    from adapt.personal import Personalizer

    p = Personalizer(onnx_bb, head, tmp_path / "p.db")
    pred = p.predict("someone", waves[0], sr=16_000)
    classes, P = head.predict_proba(torch_X[:1])
    assert pred.label == classes[int(P.argmax())]


def test_without_the_extra_the_error_names_it(monkeypatch, head_onnx, onnx_bb):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackboneNotAvailableError, match=r"ser-adapt\[onnx\]"):
        OnnxHead(head_onnx)
    with pytest.raises(BackboneNotAvailableError, match=r"ser-adapt\[onnx\]"):
        OnnxBackbone(onnx_bb.path)


def test_the_edge_snippet_in_the_docs_runs_on_an_exported_folder(int8_bb, head_onnx, tmp_path, emodb, head, torch_bb):
    """docs/backbones.md's onnxruntime-only block, on a folder holding the exported int8 encoder and head."""
    import re
    import shutil
    import subprocess

    from tests.helpers import ROOT

    page = (ROOT / "docs" / "backbones.md").read_text()
    code = re.search(r"<!-- not run: needs the folder written by `ser-adapt export onnx`[^>]*-->\n```python\n(.*?)```",
                     page, flags=re.S).group(1)
    folder = tmp_path / "model-onnx"
    folder.mkdir()
    shutil.copy(int8_bb.path, folder / "encoder.int8.onnx")
    shutil.copy(head_onnx, folder / "head.onnx")
    clip = next(r for r in emodb.filter(emotions=["angry"])).path
    shutil.copy(clip, tmp_path / "clip.flac")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    label, p = proc.stdout.split()
    assert label in head.classes and 0 < float(p) <= 1


@pytest.mark.slow
def test_a_fresh_export_matches_torch_on_a_corpus_sample(tmp_path, torch_bb, head, ravdess, emovo):
    """Export without the cache (the exporter itself), then parity on 40 clips of two corpora."""
    from adapt.onnx import export_onnx

    paths = export_onnx(tmp_path / "fresh", int8=True, cache=False)
    clips = [r.path for r in ravdess.records[::72]] + [r.path for r in emovo.records[::29]]
    X = adapt.embed(torch_bb, clips, cache=False)
    Xo = adapt.embed(OnnxBackbone(paths["encoder"]), clips, cache=False)
    assert float(np.abs(Xo - X).max()) < 1e-4
    labels, P = OnnxHead(paths["head"]).predict_proba(Xo)
    assert (P.argmax(1) == head.predict_proba(X)[1].argmax(1)).all()
