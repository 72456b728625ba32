"""CLIP on Fashion-MNIST captions, small towers on 2 CPU cores.

  python -m jejax.main --config experiments/configs/clip.py --workdir runs/multimodal/clip

Symmetric InfoNCE over the global batch of (image, caption) pairs
('fashion_mnist_captions': 40,000 train images with text), learnable logit scale from
1 / 0.07 clamped at 100 (open_clip). Deviations, for 28 px images and a CPU: the default
small ConvNet as the image tower (CLIP: ResNet-50 to ViT-L/14), a byte-level text
transformer 128 wide and 2 deep reading 52 tokens (CLIP: BPE, 512 wide, 12 deep, 77), a 128-d joint space
(512), AdamW at 2e-3 for a batch of 256 (CLIP: 5e-4 for 32,768) with weight decay 0.1
(CLIP's 0.2), 2 epochs (32). Evaluation: kNN and linear probe on the image tower's
features (every run's), and zero-shot classification and retrieval
(`experiments/multimodal.py`, `python -m jejax.embed_multimodal`).
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "clip"
  c.data.name = "fashion_mnist_captions"
  c.epochs = 2.0
  c.model.text.depth = 2
  c.model.text.context_length = 52  # the longest caption is 49 tokens, a prompt 43
  c.optim.weight_decay = 0.1
  c.eval.probe_epochs = 30
  return c
