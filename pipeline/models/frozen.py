"""The frozen start of a model's image path: images -> features, computed once and reused.

A model whose image path begins with a part that never trains and does not depend on the batch (a
frozen CNN in eval mode and a fixed pooling, a frozen CLIP image tower) exposes it through
`RetrievalModel.frozen_image_features()`. Its output can then be computed once per image, stored
(`coir data features` for training, the evaluation's feature cache) and fed to the model in place
of the images. `identity` says what determines the features, so stored features are only ever used
by a model that would compute the same ones:

    {"features": "<the computation, e.g. torchvision resnet152 layer4, avg pooling>",
     "weights_sha256": "<digest of the part's parameters and buffers, as float32>",
     "transform": {<the image transform's settings>}}

It names the computation rather than the family, so two families with the same frozen part share
stored features.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class FrozenPart:
    """module(images [N, 3, H, W]) -> features [N, ...] (no gradients, eval mode); identity: JSON."""

    module: nn.Module
    identity: str

    @property
    def identity_sha256(self) -> str:
        return hashlib.sha256(self.identity.encode()).hexdigest()


def weights_sha256(*modules: nn.Module) -> str:
    """Digest of the modules' parameters and buffers (names, shapes, values as float32), so the same
    weights give the same digest whatever precision or device the model sits in."""
    digest = hashlib.sha256()
    for index, module in enumerate(modules):
        for name, tensor in sorted(module.state_dict().items()):
            value = tensor.detach().to("cpu")
            if value.is_floating_point():
                value = value.float()
            digest.update(f"{index}.{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
            digest.update(value.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def frozen_identity(features: str, weights: str, transform: dict[str, Any]) -> str:
    """The identity string (sorted JSON) of a frozen part."""
    return json.dumps(
        {"features": features, "weights_sha256": weights, "transform": transform}, sort_keys=True
    )
