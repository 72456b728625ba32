"""SigLIP on Fashion-MNIST captions, the same towers and budget as CLIP's config.

  python -m jejax.main --config experiments/configs/siglip.py --workdir runs/multimodal/siglip

The pairwise sigmoid loss over the global batch, learnable scale t = exp t' (t' from
log 10) and bias (from -10), as the paper. Deviations as in `clip.py`; the paper's
weight decay 1e-4 for a batch of 32k with lr 1e-3 is replaced by CLIP's config's 0.1.
`--config.siglip.loss_impl=ring` (with `--config.siglip.chunk_size`) computes the same
loss with memory per device linear in the batch.
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "siglip"
  c.data.name = "fashion_mnist_captions"
  c.epochs = 2.0
  c.model.text.depth = 2
  c.model.text.context_length = 52  # the longest caption is 49 tokens, a prompt 43
  c.optim.weight_decay = 0.1
  c.eval.probe_epochs = 30
  return c
