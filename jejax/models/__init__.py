"""Flax Linen models: backbones, heads, and the SSL wrapper."""

from jejax.models.convnet import ConvNet
from jejax.models.heads import MLP, Prototypes
from jejax.models.resnet import ResNet, ResNet18, ResNet50
from jejax.models.ssl import SSLModel, l2_normalize

__all__ = ["ConvNet", "MLP", "Prototypes", "ResNet", "ResNet18", "ResNet50", "SSLModel",
           "l2_normalize"]
