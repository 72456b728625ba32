"""SimCLR on Fashion-MNIST with a small ConvNet: the main job, ~8 minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/simclr.py --workdir runs/simclr

Deviations from the ImageNet recipe, for 28 px grayscale images and a 4-epoch budget:
temperature 0.5 and colour strength 0.5 (brightness and contrast 0.4) as in SimCLR's
CIFAR-10 experiments (Chen et al. 2020, appendix B.9), which also drop the blur; crops
of at least 30% of the image instead of 8%, so that a crop keeps the garment's outline.
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "simclr"
  c.simclr.temperature = 0.5
  c.augment.crop_scale = (0.3, 1.0)
  c.augment.brightness = 0.4
  c.augment.contrast = 0.4
  c.augment.blur_prob = 0.0
  return c
