"""ResNet trunks (torchvision architectures, random or local weights), GeM pooling, and the pooled-linear
image encoder of TIRG and ComposeAE.

ARTEMIS pools layer4 (7 x 7 at 224 px); CMAP also uses layer3 and layer2 (naver/artemis and
CFM-MSG/Code_CMAP encoders.py). The trunk keeps torchvision's module names, so its state dict is a
torchvision ResNet's without `fc.*` and published ImageNet weight files load as they are.
Nothing is fetched: torchvision builds with `weights=None` and weights come from a path or stay random.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from coir.common.errors import ConfigError, DataFormatError, MissingInputError
from coir.pipeline.models.loading import load_state_checked

RESNET_ARCHS = ("resnet18", "resnet50", "resnet152")
FEATURE_LAYERS = ("layer2", "layer3", "layer4")
# channels of layer2/3/4: BasicBlock (18) x1, Bottleneck (50, 152) x4
RESNET_CHANNELS: dict[str, dict[str, int]] = {
    "resnet18": {"layer2": 128, "layer3": 256, "layer4": 512},
    "resnet50": {"layer2": 512, "layer3": 1024, "layer4": 2048},
    "resnet152": {"layer2": 512, "layer3": 1024, "layer4": 2048},
}


class ResNetTrunk(nn.Module):
    """Stem and layer1..4 of a torchvision ResNet (no avgpool, no fc).

    forward(images [B, 3, H, W]) -> {"layer2": [B, C2, H/8, W/8], "layer3": [B, C3, H/16, W/16],
    "layer4": [B, C4, H/32, W/32]}; `channels` holds C2, C3, C4."""

    def __init__(self, resnet: torchvision.models.ResNet, arch: str) -> None:
        super().__init__()
        self.arch = arch
        self.channels = dict(RESNET_CHANNELS[arch])
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            resnet.layer1,
            resnet.layer2,
            resnet.layer3,
            resnet.layer4,
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(images)))))
        layer2 = self.layer2(x)
        layer3 = self.layer3(layer2)
        return {"layer2": layer2, "layer3": layer3, "layer4": self.layer4(layer3)}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a local weight file: a plain state dict, or a checkpoint dict holding one under
    "state_dict" (.pt/.pth via torch.load(weights_only=True); .safetensors). A "module." prefix
    on every key (DataParallel) is removed."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, "weight file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling / format errors come in many types
        raise DataFormatError(path, f"cannot read weights: {type(e).__name__}: {e}") from None
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise DataFormatError(
            path, "expected a state dict {name: tensor} or a dict holding one as 'state_dict'"
        )
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    return dict(data)


def load_resnet_weights(resnet: torchvision.models.ResNet, path: str | Path, arch: str = "resnet") -> None:
    """Load a local torchvision-named state dict into `resnet`; ConfigError naming every missing,
    unexpected and wrongly shaped key when the file does not match. `fc.*` may be absent (the
    trunk drops it); so may BatchNorm's `num_batches_tracked` (older torchvision files lack it)."""
    load_state_checked(
        resnet,
        read_state_dict(path),
        lambda k: k.startswith("fc.") or k.endswith(".num_batches_tracked"),
        f"{path}: weights do not match torchvision {arch}",
    )


def build_resnet(arch: str = "resnet50", weights: str | Path | None = None) -> ResNetTrunk:
    """A ResNet trunk (resnet18 | resnet50 | resnet152): torchvision architecture with `weights=None`,
    then the local weight file when given, random (torchvision's init) otherwise."""
    if arch not in RESNET_ARCHS:
        raise ConfigError(f"CNN backbone must be one of {', '.join(RESNET_ARCHS)}, got {arch!r}")
    resnet = getattr(torchvision.models, arch)(weights=None)
    if weights is not None:
        load_resnet_weights(resnet, weights, arch)
    return ResNetTrunk(resnet, arch)


class GeM(nn.Module):
    """Generalised-mean pooling over H x W: (mean(clamp(x, eps) ** p)) ** (1 / p), [B, C, H, W] -> [B, C].

    p = 1 is average pooling, p -> inf max pooling. The references use p = 3, fixed (a float, not a
    parameter: naver/artemis and CFM-MSG/Code_CMAP encoders.py `GeneralizedMeanPooling(norm=3)`,
    eps 1e-6); `learn_p=True` makes p a parameter as in Radenović et al."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learn_p: bool = False) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM p must be > 0, got {p}")
        self.eps = eps
        if learn_p:
            self.p: torch.Tensor | float = nn.Parameter(torch.tensor(float(p)))
        else:
            self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p)
        return pooled.flatten(1)

    def extra_repr(self) -> str:
        return f"p={float(self.p):g}, eps={self.eps:g}"


class PooledLinearEncoder(nn.Module):
    """ResNet layer-4 map -> global average pooling -> linear to D, not normalised (TIRG's and ComposeAE's
    image model: the torchvision ResNet with its fc replaced)."""

    def __init__(self, backbone: str, weights: str | None, embed_dim: int) -> None:
        super().__init__()
        self.cnn = build_resnet(backbone, weights)
        self.fc = nn.Linear(self.cnn.channels["layer4"], embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.cnn(images)["layer4"].mean(dim=(2, 3)))
