"""SwAV on Fashion-MNIST with a small ConvNet, sized for a few minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/swav.py --workdir runs/swav

Deviation from the paper: 100 prototypes instead of 3000 (10 classes, batches of 256) and
the prototypes frozen for a fifth of an epoch instead of the first epoch (the run is short).
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "swav"
  c.model.num_prototypes = 100
  c.swav.freeze_prototypes_epochs = 0.2
  return c
