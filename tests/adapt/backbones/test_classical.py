"""Classical backbones (eGeMAPS via openSMILE, log-mel, MFCC) on real clips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adapt.audio import load_audio
from adapt.backbones import get_backbone, pad_batch


@pytest.fixture(scope="module")
def emodb_waves(emodb):
    return [load_audio(emodb.records[i].path).samples for i in (0, 200, 400)]


@pytest.mark.parametrize("kind,dim", [("egemaps", 88), ("egemaps-lld", 25), ("logmel", 80), ("mfcc", 40)])
def test_shapes_and_padding(kind, dim, emodb_waves):
    bb = get_backbone(kind)
    assert (bb.spec.num_layers, bb.spec.dim) == (1, dim)
    waves = [emodb_waves[0], emodb_waves[1][:20000], emodb_waves[2][:9000]]
    x, lengths = pad_batch(waves)
    batch = bb(x, lengths)
    assert batch.features.shape[0] == 1 and batch.features.shape[-1] == dim
    for i, w in enumerate(waves):
        single = bb(torch.from_numpy(w)[None])
        torch.testing.assert_close(batch.item(i), single.item(0), atol=1e-5, rtol=1e-5)
        assert torch.isfinite(single.features).all()
    if kind == "egemaps":
        assert batch.lengths.tolist() == [1, 1, 1]
    else:
        # 10 ms hop: frame counts follow the clip lengths
        assert batch.lengths.tolist()[0] > batch.lengths.tolist()[1] > batch.lengths.tolist()[2]


def test_egemaps_features_separate_loud_from_quiet(emodb_waves):
    bb = get_backbone("egemaps")
    w = emodb_waves[0]
    loud = bb(torch.from_numpy(w)[None]).item(0)[0].numpy()
    quiet = bb(torch.from_numpy(w * 0.1)[None]).item(0)[0].numpy()
    assert not np.allclose(loud, quiet)
