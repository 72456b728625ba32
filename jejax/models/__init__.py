"""Flax Linen models: backbones (registered by name in `BACKBONES`), heads, the view
methods' SSL wrapper, and the I-JEPA and MAE models."""

from jejax.models.base import BACKBONES
from jejax.models.convnet import ConvNet
from jejax.models.heads import MLP, Prototypes
from jejax.models.resnet import ResNet, ResNet18, ResNet50
from jejax.models.ssl import SSLModel
from jejax.models.vit import VIT_SIZES, ViT, sincos_2d, vit_from_name

__all__ = ["BACKBONES", "ConvNet", "MLP", "Prototypes", "ResNet", "ResNet18", "ResNet50",
           "SSLModel", "VIT_SIZES", "ViT", "sincos_2d", "vit_from_name"]
