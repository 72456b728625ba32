"""Flax Linen models: backbones (registered by name in `BACKBONES`), heads, the view
methods' SSL wrapper, the I-JEPA, MAE and DeCUR models, and the multimodal towers
(registered in `TOWERS`) with their joint model."""

from jejax.models.audio import AudioViT
from jejax.models.base import BACKBONES, TOWERS
from jejax.models.convnet import ConvNet
from jejax.models.decur import DecurModel
from jejax.models.heads import MLP, Prototypes
from jejax.models.multimodal import MultimodalModel
from jejax.models.resnet import ResNet, ResNet18, ResNet50
from jejax.models.ssl import SSLModel
from jejax.models.text import TextTransformer
from jejax.models.vit import VIT_SIZES, ViT, sincos_2d, vit_from_name

__all__ = ["AudioViT", "BACKBONES", "ConvNet", "DecurModel", "MLP", "MultimodalModel", "Prototypes",
           "ResNet", "ResNet18", "ResNet50", "SSLModel", "TOWERS", "TextTransformer",
           "VIT_SIZES", "ViT", "sincos_2d", "vit_from_name"]
