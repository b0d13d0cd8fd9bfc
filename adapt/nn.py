"""The small torch MLP used as a head over embeddings: by continual strategies, the encoder
fine-tuning model and the notebooks.

``MLPClassifier`` has the layout of Avalanche's ``SimpleMLP`` (``features``: hidden layers,
``classifier``: the output layer; parameters created in the same order, so under the same seed
both have identical weights and their ``state_dict`` keys match), without importing Avalanche:
the runtime (``adapt``) must work where the research extras are not installed.

Example:
    >>> import torch
    >>> model = MLPClassifier(input_size=8, num_classes=3, hidden=16)
    >>> model(torch.zeros(2, 8)).shape
    torch.Size([2, 3])
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["MLPClassifier", "head_dims", "weights_to_json", "load_json_weights"]


class MLPClassifier(nn.Module):
    """``[B, input_size]`` -> hidden ReLU layers with dropout -> logits ``[B, num_classes]``.

    Arguments:
        input_size: embedding dimension ``D``.
        num_classes: output size (>= 2).
        hidden: width of every hidden layer.
        layers: number of hidden layers (>= 1).
        dropout: dropout after each hidden layer (0 disables it).
    """

    def __init__(self, *, input_size: int, num_classes: int, hidden: int = 256, layers: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if input_size < 1 or num_classes < 2:
            raise ValueError(f"need input_size >= 1 and num_classes >= 2, got {input_size}, {num_classes}")
        if layers < 1 or hidden < 1:
            raise ValueError(f"need layers >= 1 and hidden >= 1, got {layers}, {hidden}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        blocks: list[nn.Module] = [nn.Linear(input_size, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout)]
        for _ in range(layers - 1):
            blocks.append(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout)))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(hidden, num_classes)
        self.input_size, self.num_classes = int(input_size), int(num_classes)

    def get_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's output ``[B, hidden]``."""
        return self.features(x.contiguous().view(x.size(0), self.input_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.get_features(x))


def head_dims(model: nn.Module) -> tuple[int, int]:
    """``(input_size, num_classes)`` read from the first and last ``nn.Linear`` of ``model``."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f"cannot infer input/output sizes: {type(model).__name__} has no nn.Linear")
    return linears[0].in_features, linears[-1].out_features


def weights_to_json(module: nn.Module) -> dict[str, list]:
    """A module's ``state_dict`` as JSON lists (the ``"weights"`` of a torch head's ``get_state``)."""
    return {k: v.tolist() for k, v in module.state_dict().items()}


def load_json_weights(module: nn.Module, weights: dict, owner: str) -> nn.Module:
    """Load ``weights_to_json`` output into ``module`` (float32) and switch it to eval mode.

    Raises ``ValueError`` naming ``owner`` when the weights do not fit the module (a state whose
    config and weights disagree)."""
    sd = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in weights.items()}
    try:
        module.load_state_dict(sd)
    except RuntimeError as exc:
        raise ValueError(f"{owner} state does not match its config: {exc}") from None
    return module.eval()
