"""DINO on Fashion-MNIST with a small ConvNet and multi-crop, a few minutes on 2 CPU cores.

  python -m jejax.main --config experiments/configs/dino.py --workdir runs/dino

The paper's student temperature 0.1, center momentum 0.9 and teacher momentum 0.996
(cosine to 1); the teacher temperature warms up from 0.04 to 0.07 over the first epoch
(the paper's ViT-S/16 runs do so over 30 of 100 epochs). Multi-crop: the two 28 px global
views of BYOL's recipe (DINO's augmentation), crops of at least 40% (DINO's default),
plus 4 small 12 px crops of 5-40% of the image (DINO: 8 x 96 px on 224 px global crops).
The teacher is evaluated, as in the paper (`eval.encoder='target'`). Deviations: 1024
outputs instead of 65536, a 512-wide ReLU/BN head instead of the
2048-wide GELU head, the last layer frozen for a fifth of an epoch instead of one epoch
(the run is 4 epochs).
"""

from jejax.config import base_config


def get_config():
  c = base_config()
  c.method = "dino"
  c.augment.recipe = "byol"
  c.augment.crop_scale = (0.4, 1.0)
  c.augment.num_small_crops = 4
  c.augment.small_crop_size = 12
  c.augment.small_crop_scale = (0.05, 0.4)
  c.model.projector_hidden = (512, 512)
  c.model.num_prototypes = 1024
  c.dino.teacher_temperature = 0.07
  c.dino.warmup_teacher_temperature = 0.04
  c.dino.warmup_teacher_temperature_epochs = 1.0
  c.dino.freeze_last_layer_epochs = 0.2
  c.eval.encoder = "target"
  return c
