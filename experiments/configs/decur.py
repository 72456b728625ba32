"""DeCUR on Fashion-MNIST images and their captions, small towers on 2 CPU cores.

  python -m jejax.main --config experiments/configs/decur.py --workdir runs/multimodal/decur
  # images and speech instead (the (image, speech) pairs of 'fashion_mnist_binding'):
  python -m jejax.main --config experiments/configs/decur.py --workdir runs/multimodal/decur_audio \
      --config.decur.modalities="('image', 'audio')" --config.data.name=fashion_mnist_binding

Barlow Twins within each modality and across them, the first 75% of the embedding
dimensions common to image and caption, the rest unique to each (`jejax.losses.decur_loss`).

| setting | paper (authors' code) | here |
|---|---|---|
| encoders | ResNet-50 / ViT-S/16 / MiT-B5 per modality | the default small ConvNet; a byte-level text transformer 128 wide, 2 deep, 52 tokens (clip.py's) |
| projector | 8192-8192-8192, one module for both modalities (by accident) | 512-512, one per modality |
| common dims K / D | 6144 / 8192 (0.75, SUN RGB-D, GeoNRW), 7168 / 8192 (0.875, SSL4EO-S12) | 384 / 512 (0.75) |
| lambda | 0.0051 | 0.0051 |
| views | crops, flips, blur, jitter of both sensors' images | images: BYOL's recipe with crops of at least 30% (barlow_twins.py's); captions: 10% byte deletion; speech: one time mask of up to 50 frames |
| optimizer | LARS, lr 0.05 (weights), wd 1e-6, batch 4 x 32-128, cosine, 100-200 epochs | AdamW 2e-3 for batch 256, wd 1e-5, 0.1-epoch warmup, cosine, 2 epochs |

Evaluation: kNN and linear probe on the image tower's features (every run's);
`experiments/decur_unique.py` probes the common and unique dimensions against CLIP.
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "decur"
  c.data.name = "fashion_mnist_captions"
  c.epochs = 2.0
  c.model.text.depth = 2
  c.model.text.context_length = 52  # the longest caption is 49 tokens
  c.model.projector_hidden = (512,)
  c.model.embed_dim = 512
  c.augment.recipe = "byol"
  c.augment.crop_scale = (0.3, 1.0)
  c.decur.common_fraction = 0.75
  c.eval.probe_epochs = 30
  return c
