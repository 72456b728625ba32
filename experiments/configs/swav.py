"""SwAV on Fashion-MNIST with a small ConvNet, sized for a few minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/swav.py --workdir runs/swav

Sinkhorn-Knopp with the paper's epsilon 0.05 and 3 iterations, temperature 0.1.
Deviations: 100 prototypes instead of 3000 (10 classes, batches of 256); prototypes frozen
for a fifth of an epoch instead of the first epoch (the run is 4 epochs); two 28 px views
with SimCLR's CIFAR-style augmentation (see simclr.py), no multi-crop; no queue of past
embeddings (the paper adds one for batches of 256). With AdamW, the prototypes' moments stay
at zero while frozen, so their first free updates are larger than later ones.
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "swav"
  c.model.num_prototypes = 100
  c.swav.freeze_prototypes_epochs = 0.2
  c.augment.crop_scale = (0.3, 1.0)
  c.augment.brightness = 0.4
  c.augment.contrast = 0.4
  c.augment.blur_prob = 0.0
  return c
