"""Model zoo: the reference ResNet-50 and smaller members of its family, selected by name."""

from fixmatch.models.resnet import (
    BN_EPSILON,
    BN_MOMENTUM,
    DTYPE_POLICIES,
    MODEL_NAMES,
    ResNet18,
    ResNet50,
    ResNetTiny,
    build_model,
)

__all__ = [
    "BN_EPSILON", "BN_MOMENTUM", "DTYPE_POLICIES", "MODEL_NAMES",
    "ResNet18", "ResNet50", "ResNetTiny", "build_model",
]
