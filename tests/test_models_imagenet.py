"""ImageNet-1k class names without a download."""
from __future__ import annotations

import torchvision

from featviz_cli.models.imagenet import imagenet_classes


def test_imagenet_classes() -> None:
    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby"
    assert names == tuple(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
