"""Fine-tuning the encoder: a backbone with its top layers unfrozen plus a small head.

The default path freezes the backbone and trains heads on cached embeddings (fast on a CPU).
``EncoderClassifier`` is the option for users with a GPU: it runs the backbone on audio, pools
every layer's frames (``adapt.pooling.pool``), combines the layers with learnable SUPERB-style
softmax weights (``adapt.pooling.LayerWeights``; layer 0 is the CNN/conv output, the input of the
first transformer block) or concatenates them, and classifies with a small MLP head
(``adapt.nn.MLPClassifier``, laid out as Avalanche's ``SimpleMLP``). Only the top ``unfreeze_top`` transformer
blocks of the backbone are trainable (plus the norm after the last block where the model has one:
Whisper, pre-LN wav2vec2-family models); everything below stays frozen.

It is a plain ``nn.Module``, so the continual strategies take it as they are:
``strategies.make_strategy("ewc", model, device=model.device)`` trains it on a
``scenarios.continual.audio.audio_scenario`` benchmark (minibatch inputs are ``PaddedAudio``).

The backbone always runs in eval mode, also while the head trains: LayerDrop (wav2vec2 family)
would skip blocks in train mode and change the layer stack, and dropout inside a mostly frozen
encoder only adds noise.

Example:
    >>> model = EncoderClassifier(backbone="whisper-tiny.en", num_classes=4, unfreeze_top=1)  # doctest: +SKIP
    >>> logits = model(torch.zeros(2, 16000), torch.tensor([16000, 8000]))                    # doctest: +SKIP
    >>> logits.shape                                                                           # doctest: +SKIP
    torch.Size([2, 4])
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..backbones import Backbone, get_backbone
from ..embedding.pooling import LayerWeights, pool, pooled_dim
from ..nn import MLPClassifier

__all__ = ["EncoderClassifier", "LAYER_MODES", "default_device"]

#: how the pooled layers become one vector: learnable softmax weights, concatenation, last layer
LAYER_MODES = ("weighted", "all", "last")


def default_device() -> torch.device:
    """CUDA if available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class EncoderClassifier(nn.Module):
    """Backbone (top ``unfreeze_top`` blocks trainable) -> pooled layers -> layer mix -> MLP head.

    Arguments:
        backbone: a ``Backbone`` or a registry name (``None``: the offline Whisper tiny.en;
            ``"hf:<dir>"``...). A name loads a *private* copy (``get_backbone(reuse=False)``) so
            fine-tuning never changes the instance other code shares; a ``Backbone`` passed in is
            modified in place.
        num_classes: output size (>= 2).
        layers: ``"weighted"`` (SUPERB softmax weights, ``[B, D']``), ``"all"`` (concatenated,
            ``[B, L*D']``) or ``"last"``.
        pooling: ``"mean"`` or ``"meanstd"`` over valid frames.
        unfreeze_top: how many of the top transformer blocks train (0: the backbone stays frozen
            and runs without autograd).
        hidden / head_layers / dropout: the MLP head (``adapt.nn.MLPClassifier``).
        device: where the model lives (default: CUDA if available, else CPU).

    Input ``waveforms`` ``(B, S)`` 16 kHz with ``lengths`` ``(B,)`` (or one ``PaddedAudio``);
    output logits ``(B, num_classes)``.
    """

    def __init__(self, *, backbone: Backbone | str | None = None, num_classes: int, layers: str = "weighted",
                 pooling: str = "mean", unfreeze_top: int = 0, hidden: int = 256, head_layers: int = 1,
                 dropout: float = 0.2, device: str | torch.device | None = None) -> None:
        super().__init__()
        # check the cheap options before loading weights
        if layers not in LAYER_MODES:
            raise ValueError(f"layers must be one of {LAYER_MODES}, got {layers!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if isinstance(unfreeze_top, bool) or not isinstance(unfreeze_top, (int, np.integer)) or unfreeze_top < 0:
            raise ValueError(f"unfreeze_top must be an int >= 0, got {unfreeze_top!r}")
        pooled_dim(pooling, 1)  # KeyError listing the known poolings
        if backbone is None or isinstance(backbone, str):
            backbone = get_backbone(backbone, reuse=False)
        if not isinstance(backbone, Backbone):
            raise TypeError(f"backbone must be a Backbone or a registry name, got {type(backbone).__name__}")
        blocks = self._blocks(backbone) if unfreeze_top else None
        if blocks is not None and unfreeze_top > len(blocks):
            raise ValueError(f"unfreeze_top={unfreeze_top} but {backbone.spec.name} has {len(blocks)} transformer layers")
        self.backbone = backbone.freeze()
        self.unfreeze_top = int(unfreeze_top)
        self.layers = layers
        self.pooling = pooling
        if blocks is not None:
            for block in list(blocks)[len(blocks) - self.unfreeze_top:]:
                block.requires_grad_(True)
            norm = backbone.output_norm()
            if norm is not None:
                norm.requires_grad_(True)
        n_layers, dim = backbone.spec.num_layers, pooled_dim(pooling, backbone.spec.dim)
        self.layer_weights = LayerWeights(num_layers=n_layers) if layers == "weighted" else None
        in_size = dim * n_layers if layers == "all" else dim
        self.head = MLPClassifier(input_size=in_size, num_classes=int(num_classes), hidden=hidden, layers=head_layers,
                                  dropout=dropout)
        self.num_classes = int(num_classes)
        self.to(torch.device(device) if device is not None else default_device())

    @staticmethod
    def _blocks(backbone: Backbone) -> nn.ModuleList:
        try:
            return backbone.transformer_layers()
        except (NotImplementedError, AttributeError) as err:
            raise ValueError(f"unfreeze_top needs a transformer backbone; {backbone.spec.name}: {err}") from err

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    def train(self, mode: bool = True) -> "EncoderClassifier":
        super().train(mode)
        self.backbone.eval()  # always: see the module docstring (LayerDrop, dropout)
        return self

    def trainable_parameter_names(self) -> list[str]:
        """Names of the parameters that receive gradients (``backbone.*`` only for the top blocks)."""
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def embed(self, waveforms, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The head's input ``(B, D')``: pooled layers combined per ``layers``."""
        if hasattr(waveforms, "waveforms") and hasattr(waveforms, "lengths"):  # PaddedAudio / AudioBatch
            waveforms, lengths = waveforms.waveforms, waveforms.lengths
        if lengths is not None:
            lengths = torch.as_tensor(lengths).cpu()
        waveforms = waveforms.to(self.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.unfreeze_top > 0):
            stack = self.backbone(waveforms, lengths)
        pooled = pool(stack.features, stack.lengths, self.pooling)  # (L, B, D')
        if self.layers == "weighted":
            return self.layer_weights(pooled)
        if self.layers == "last":
            return pooled[-1]
        return pooled.permute(1, 0, 2).reshape(pooled.shape[1], -1)

    def forward(self, waveforms, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``waveforms`` ``(B, S)`` (or a ``PaddedAudio``), ``lengths`` ``(B,)`` -> logits ``(B, C)``."""
        return self.head(self.embed(waveforms, lengths))
