"""ImageNet-1k class names, in the standard index order, without any download."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order (from torchvision's weights metadata, in code)."""
    # The metadata ships inside torchvision's source; reading it downloads nothing.
    from torchvision.models import ResNet50_Weights

    names = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != 1000:  # pragma: no cover - would mean torchvision changed its metadata
        raise RuntimeError(f"torchvision's ImageNet metadata has {len(names)} classes, expected 1000")
    return names
