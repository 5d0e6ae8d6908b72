"""ResNet trunks from local weights (never downloaded) and GeM pooling."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torchvision

from coir.common.errors import ConfigError, DataFormatError, MissingInputError
from coir.pipeline.models.components.cnn import RESNET_ARCHS, GeM, ResNetTrunk, build_resnet


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def test_trunk_feature_maps_channels_and_gradients() -> None:
    torch.manual_seed(0)
    trunk = build_resnet("resnet18")
    assert isinstance(trunk, ResNetTrunk) and trunk.channels == {"layer2": 128, "layer3": 256, "layer4": 512}
    assert not any(k.startswith("fc.") for k in trunk.state_dict())
    images = torch.randn(2, 3, 64, 64, requires_grad=True)
    maps = trunk(images)
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "layer2": (2, 128, 8, 8),
        "layer3": (2, 256, 4, 4),
        "layer4": (2, 512, 2, 2),
    }
    (maps["layer2"].mean() + maps["layer3"].mean() + GeM()(maps["layer4"]).sum()).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert trunk.conv1.weight.grad.abs().sum() > 0 and trunk.layer4[-1].conv2.weight.grad.abs().sum() > 0


def test_building_never_touches_the_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("network access while building a backbone")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    channels = {}
    for arch in RESNET_ARCHS:
        channels[arch] = build_resnet(arch).channels["layer4"]
    assert channels == {"resnet18": 512, "resnet50": 2048, "resnet152": 2048}
    assert not (tmp_path / "torch_home").exists()
    with pytest.raises(ConfigError, match="resnet34"):
        build_resnet("resnet34")


def test_local_weights_round_trip(resnet18_weights: Path, tmp_path: Path) -> None:
    reference = torchvision.models.resnet18(weights=None)
    reference.load_state_dict(torch.load(resnet18_weights, weights_only=True))
    reference.eval()
    trunk = build_resnet("resnet18", resnet18_weights).eval()
    random = build_resnet("resnet18").eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = torch.nn.Sequential(*list(reference.children())[:-2])(images)  # up to layer4
        assert torch.equal(trunk(images)["layer4"], expected)
        assert not torch.allclose(random(images)["layer4"], expected)
    # a checkpoint dict holding "state_dict" with DataParallel names, without fc and num_batches_tracked
    state = {
        f"module.{k}": v
        for k, v in torch.load(resnet18_weights, weights_only=True).items()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }
    wrapped = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "state_dict": state}, wrapped)
    with torch.no_grad():
        assert torch.equal(build_resnet("resnet18", wrapped).eval()(images)["layer4"], expected)


def test_mismatched_weights_list_the_keys(resnet18_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        build_resnet("resnet50", resnet18_weights)
    message = str(error.value)
    assert "resnet18.pth" in message and "torchvision resnet50" in message
    assert "missing keys" in message and "layer1.0.conv3.weight" in message
    assert "wrong shapes" in message and "layer2.0.conv1.weight" in message

    state = torch.load(resnet18_weights, weights_only=True)
    state["head.weight"] = torch.zeros(3)
    del state["layer4.1.bn2.running_var"]
    edited = tmp_path / "edited.pth"
    torch.save(state, edited)
    with pytest.raises(
        ConfigError,
        match=r"missing keys \(1\): layer4\.1\.bn2\.running_var; unexpected keys \(1\): head\.weight",
    ):
        build_resnet("resnet18", edited)

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataFormatError, match="junk.pth"):
        build_resnet("resnet18", tmp_path / "junk.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(DataFormatError, match="state dict"):
        build_resnet("resnet18", tmp_path / "list.pth")
    with pytest.raises(MissingInputError, match="absent.pth"):
        build_resnet("resnet18", tmp_path / "absent.pth")


def test_gem_pooling() -> None:
    x = torch.rand(2, 3, 5, 5) + 0.1
    gem = GeM()
    assert gem.p == 3.0 and not list(gem.parameters())  # fixed p = 3, as both references
    assert torch.allclose(gem(x), x.pow(3).mean(dim=(2, 3)).pow(1 / 3))
    assert torch.allclose(GeM(p=1)(x), x.mean(dim=(2, 3)))
    assert torch.allclose(GeM(p=200)(x), x.amax(dim=(2, 3)), rtol=0.02)
    assert torch.all(gem(-x) > 0)  # clamped at eps
    learned = GeM(learn_p=True)
    learned(x).sum().backward()
    assert learned.p.grad is not None and learned.p.grad != 0
