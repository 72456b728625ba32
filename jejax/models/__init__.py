"""Flax Linen models: backbones (registered by name in `BACKBONES`), heads, the view
methods' SSL wrapper, the I-JEPA, MAE and DeCUR models, the multimodal towers
(registered in `TOWERS`) with their joint model, and the fusion modules (registered in
`FUSIONS`)."""

from jejax.models.audio import AudioViT
from jejax.models.base import BACKBONES, FUSIONS, TOWERS
from jejax.models.convnet import ConvNet
from jejax.models.decur import DecurModel
from jejax.models.fusion import (AttentionPoolFusion, ConcatFusion, CrossAttentionFusion,
                                  Tokens, attention_pool, pooled)
from jejax.models.heads import MLP, Prototypes
from jejax.models.multimodal import MultimodalModel
from jejax.models.resnet import ResNet, ResNet18, ResNet50
from jejax.models.ssl import SSLModel
from jejax.models.text import TextTransformer
from jejax.models.vit import VIT_SIZES, ViT, sincos_2d, vit_from_name

__all__ = ["AttentionPoolFusion", "AudioViT", "BACKBONES", "ConcatFusion", "ConvNet",
           "CrossAttentionFusion", "DecurModel", "FUSIONS", "MLP", "MultimodalModel",
           "Prototypes", "ResNet", "ResNet18", "ResNet50", "SSLModel", "TOWERS",
           "TextTransformer", "Tokens", "VIT_SIZES", "ViT", "attention_pool", "pooled",
           "sincos_2d", "vit_from_name"]
