"""SimCLR on Fashion-MNIST with a small ConvNet, sized for a few minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/simclr.py --workdir runs/simclr
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "simclr"
  c.simclr.temperature = 0.5  # SimCLR's CIFAR-10 setting; 0.1 is its ImageNet default
  return c
